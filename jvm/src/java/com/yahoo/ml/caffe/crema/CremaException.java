// The exception every failure of crema's C API becomes on the JVM: the
// status code and crema_errmsg()'s message (which names the file, line or
// record, and field).
package com.yahoo.ml.caffe.crema;

public class CremaException extends RuntimeException {
    private static final long serialVersionUID = 1L;
    private final int status;

    public CremaException(int status, String message) {
        super(message);
        this.status = status;
    }

    /** crema_status: 1 IO, 2 PARSE, 3 INVALID, 4 SHAPE, 5 UNSUPPORTED, 6 NOMEM, 7 NOTFOUND, 8 DIST, 9 INTERRUPTED. */
    public int status() {
        return status;
    }
}
