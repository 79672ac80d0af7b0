// A CremaException of status CREMA_ERR_DIST: a peer rank or the rendezvous
// failed. When a rank fails, the others end with this; the first other
// failure is the cause (CaffeOnSpark reports that one).
package com.yahoo.ml.caffe.crema;

public class CremaDistException extends CremaException {
    private static final long serialVersionUID = 1L;

    public CremaDistException(int status, String message) {
        super(status, message);
    }
}
