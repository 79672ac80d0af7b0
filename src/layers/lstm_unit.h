/* The LSTM cell step that both the LSTMUnit layer and the LSTM layer use:
 * gates laid out [i f o g] per instance, as Caffe's LSTMUnitLayer. */
#ifndef CREMA_LAYERS_LSTM_UNIT_H
#define CREMA_LAYERS_LSTM_UNIT_H

/* One time step for n instances of hidden size h:
 *   c = cont*sigmoid(f)*c_prev + sigmoid(i)*tanh(g),  out = sigmoid(o)*tanh(c). */
void lstm_unit_forward(int n, int h, const float *c_prev, const float *x, const float *cont,
                       float *c, float *out);

/* Its gradient from dc (may be NULL: zero) and dh. c_prev_diff and x_diff may
 * each be NULL when not wanted; they are overwritten. c_prev_diff may be
 * the same buffer as dc (each element is read before it is written). */
void lstm_unit_backward(int n, int h, const float *c_prev, const float *x, const float *cont,
                        const float *c, const float *dc, const float *dh, float *c_prev_diff,
                        float *x_diff);

#endif
