/* Every layer kind crema has, one line each: KIND(symbol), where the symbol
 * is the `const struct layer_kind` its family file defines.
 * Keep one family per block; the order does not matter. */

/* inputs (input.c) */
KIND(input_layer)
KIND(dummy_data_layer)
KIND(memory_data_layer)

/* vision (convolution.c, pooling.c, lrn.c, spp.c, im2col.c, crop.c) */
KIND(convolution_layer)
KIND(deconvolution_layer)
KIND(pooling_layer)
KIND(lrn_layer)
KIND(spp_layer)
KIND(im2col_layer)
KIND(crop_layer)

/* inner_product.c, embed.c */
KIND(inner_product_layer)
KIND(embed_layer)

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
KIND(eltwise_layer)
KIND(concat_layer)
KIND(slice_layer)
KIND(flatten_layer)
KIND(reshape_layer)
KIND(tile_layer)
KIND(reduction_layer)
KIND(argmax_layer)
KIND(softmax_layer)
KIND(filter_layer)
KIND(batch_reindex_layer)
KIND(parameter_layer)
KIND(silence_layer)

/* losses (loss.c, accuracy.c) */
KIND(softmax_loss_layer)
KIND(euclidean_loss_layer)
KIND(sigmoid_ce_loss_layer)
KIND(hinge_loss_layer)
KIND(contrastive_loss_layer)
KIND(infogain_loss_layer)
KIND(multinomial_loss_layer)
KIND(accuracy_layer)

/* recurrent (recurrent.c, lstm_unit.c) */
KIND(rnn_layer)
KIND(lstm_layer)
KIND(lstm_unit_layer)

/* data (data_layer.c, image_data.c, hdf5.c, window_data.c, memory_data.c) */
KIND(data_layer)
KIND(hdf5_data_layer)
KIND(hdf5_output_layer)
KIND(image_data_layer)
KIND(window_data_layer)
KIND(cos_data_layer)

/* layers a front end implements by callbacks (python_layer.c) */
KIND(python_layer)
