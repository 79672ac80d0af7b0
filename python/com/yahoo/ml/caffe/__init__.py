"""CaffeOnSpark's Python modules, as its users import them
(`from com.yahoo.ml.caffe.CaffeOnSpark import CaffeOnSpark`), over
crema.spark. com, com.yahoo and com.yahoo.ml are namespace packages, so
that other distributions may share them."""
