/* Every layer kind crema has, one line each: KIND(symbol), where the symbol
 * is the `const struct layer_kind` its family file defines.
 * Keep one family per block; the order does not matter. */

/* inputs (input.c) */

/* vision (convolution.c, pooling.c, lrn.c, spp.c, im2col.c, crop.c) */

/* inner_product.c, embed.c */

/* activations (neuron.c) */

/* normalisation (batch_norm.c, scale.c, bias.c, mvn.c) */

/* structure (structure.c: eltwise, concat, slice, split, ...) */

/* losses (loss.c, accuracy.c) */

/* recurrent (recurrent.c, lstm_unit.c) */

/* data (data_layer.c, image_data.c, hdf5.c, window_data.c, memory_data.c) */
KIND(data_layer)
KIND(hdf5_data_layer)
KIND(hdf5_output_layer)
