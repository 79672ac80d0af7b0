/* Every layer kind crema has, one line each: KIND(symbol), where the symbol
 * is the `const struct layer_kind` its family file defines.
 * Keep one family per block; the order does not matter. */

/* inputs (input.c) */
KIND(input_layer)
KIND(dummy_data_layer)
KIND(memory_data_layer)

/* vision (convolution.c, pooling.c, lrn.c, spp.c, im2col.c, crop.c) */

/* inner_product.c, embed.c */

/* activations (neuron.c) */
KIND(relu_layer)
KIND(prelu_layer)
KIND(elu_layer)
KIND(sigmoid_layer)
KIND(tanh_layer)
KIND(absval_layer)
KIND(power_layer)
KIND(exp_layer)
KIND(log_layer)
KIND(bnll_layer)
KIND(threshold_layer)
KIND(clip_layer)
KIND(swish_layer)
KIND(dropout_layer)

/* normalisation (batch_norm.c, scale.c, bias.c, mvn.c) */
KIND(batch_norm_layer)
KIND(scale_layer)
KIND(bias_layer)
KIND(mvn_layer)

/* structure (structure.c: eltwise, concat, slice, split, ...) */
KIND(split_layer)

/* losses (loss.c, accuracy.c) */

/* recurrent (recurrent.c, lstm_unit.c) */
KIND(rnn_layer)
KIND(lstm_layer)
KIND(lstm_unit_layer)

/* data (data_layer.c, image_data.c, hdf5.c, window_data.c, memory_data.c) */
