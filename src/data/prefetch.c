/* The prefetch ring: one filler thread, n slots, a mutex and a condition
 * variable; the consumer copies a full slot out and hands it back. */
#include "data/prefetch.h"
#include "util/err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct prefetch {
    prefetch_fill_fn fill;
    void *ctx;
    int batch_size, n_slots;
    struct prefetch_batch *slots;
    int head, n_full;
    bool started, stop, failed;
    int fail_rc;
    char fail_msg[1024];
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* With prefetch_track: marks[i] is where slot i's batch began, and
     * marks[n_slots] where the thread begins its next batch (written by the
     * thread under mu); state is what they are copies of. */
    const void *state;
    size_t mark_size;
    unsigned char *marks;
    const struct backend *be; /* prefetch_set_device: uploads by the thread */
};

static void *mark_at(struct prefetch *pf, int i)
{
    return pf->marks + (size_t)i * pf->mark_size;
}

int prefetch_new(int batch_size, int n_slots, prefetch_fill_fn fill, void *ctx, struct prefetch **out)
{
    *out = NULL;
    if (batch_size <= 0)
        return err_set(CREMA_ERR_INVALID, "batch_size %d must be positive", batch_size);
    struct prefetch *pf = calloc(1, sizeof *pf);
    if (!pf)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    pf->fill = fill;
    pf->ctx = ctx;
    pf->batch_size = batch_size;
    pf->n_slots = n_slots < 1 ? 1 : n_slots;
    pthread_mutex_init(&pf->mu, NULL);
    pthread_cond_init(&pf->cv, NULL);
    pf->slots = calloc((size_t)pf->n_slots, sizeof *pf->slots);
    for (int i = 0; pf->slots && i < pf->n_slots; i++) {
        pf->slots[i].label = calloc((size_t)batch_size, sizeof(float));
        if (!pf->slots[i].label) {
            prefetch_free(pf);
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        }
    }
    if (!pf->slots) {
        prefetch_free(pf);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    *out = pf;
    return CREMA_OK;
}

int prefetch_track(struct prefetch *pf, const void *state, size_t mark_size)
{
    if (pf->started)
        return err_set(CREMA_ERR_INVALID, "prefetch_track: the thread has started");
    unsigned char *m = calloc((size_t)pf->n_slots + 1, mark_size ? mark_size : 1);
    if (!m)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    free(pf->marks);
    pf->marks = m;
    pf->mark_size = mark_size;
    pf->state = state;
    return CREMA_OK;
}

void prefetch_stop(struct prefetch *pf)
{
    if (!pf || !pf->started)
        return;
    pthread_mutex_lock(&pf->mu);
    pf->stop = true;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    pthread_join(pf->thread, NULL);
    pf->started = pf->stop = pf->failed = false;
    pf->head = pf->n_full = 0;
}

void prefetch_position(struct prefetch *pf, void *out)
{
    if (!pf->state)
        return;
    pthread_mutex_lock(&pf->mu);
    if (!pf->started)
        memcpy(out, pf->state, pf->mark_size); /* no thread: the fill state is where the next batch begins */
    else
        memcpy(out, mark_at(pf, pf->n_full > 0 ? pf->head : pf->n_slots), pf->mark_size);
    pthread_mutex_unlock(&pf->mu);
}

void prefetch_free(struct prefetch *pf)
{
    if (!pf)
        return;
    prefetch_stop(pf);
    for (int i = 0; pf->slots && i < pf->n_slots; i++) {
        struct prefetch_batch *b = &pf->slots[i];
        if (b->pin) {
            if (b->data)
                b->pin->host_unregister(b->pin, b->data);
            b->pin->host_unregister(b->pin, b->label);
        }
        if (pf->be) {
            if (b->dev_data)
                pf->be->free(pf->be, b->dev_data);
            if (b->dev_label)
                pf->be->free(pf->be, b->dev_label);
            pf->be->mark_free(pf->be, b->consumed);
        }
        free(b->data);
        free(b->label);
    }
    free(pf->slots);
    free(pf->marks);
    pthread_mutex_destroy(&pf->mu);
    pthread_cond_destroy(&pf->cv);
    free(pf);
}

int prefetch_slots(const Caffe__LayerParameter *lp)
{
    static const Caffe__DataParameter def = CAFFE__DATA_PARAMETER__INIT;
    const Caffe__DataParameter *dp = lp && lp->data_param ? lp->data_param : &def;
    if (dp->prefetch == 0)
        return 1;
    return dp->prefetch < 64 ? (int)dp->prefetch : 64;
}

bool prefetch_started(const struct prefetch *pf)
{
    return pf && pf->started;
}

int prefetch_reserve(struct prefetch_batch *b, int batch_size, int c, int h, int w)
{
    size_t need = (size_t)c * (size_t)h * (size_t)w * (size_t)batch_size;
    if (need > b->cap) {
        /* pinned memory must be unpinned before it moves */
        if (b->pin && b->data)
            b->pin->host_unregister(b->pin, b->data);
        float *d = realloc(b->data, need * sizeof(float));
        if (!d) {
            if (b->pin && b->data)
                b->pin->host_register(b->pin, b->data, b->cap * sizeof(float));
            return err_set(CREMA_ERR_NOMEM, "out of memory for a batch of %zu floats", need);
        }
        b->data = d;
        b->cap = need;
        if (b->pin && b->pin->host_register(b->pin, d, need * sizeof(float)))
            err_clear(); /* pageable: slower, still right */
    }
    b->c = c;
    b->h = h;
    b->w = w;
    return CREMA_OK;
}

/* On the thread: the filled slot's batch to the device, once the consumer's
 * last copy out of its staging is done. */
static int upload_slot(struct prefetch *pf, struct prefetch_batch *b)
{
    const struct backend *be = pf->be;
    size_t n = (size_t)pf->batch_size * (size_t)b->c * (size_t)b->h * (size_t)b->w;
    int rc = be->mark_wait(be, b->consumed);
    if (!rc && n > b->dev_cap) {
        if (b->dev_data)
            be->free(be, b->dev_data);
        b->dev_data = be->alloc(be, n * sizeof(float));
        b->dev_cap = b->dev_data ? n : 0;
        if (!b->dev_data)
            rc = CREMA_ERR_NOMEM;
    }
    if (!rc && !b->dev_label && !(b->dev_label = be->alloc(be, (size_t)pf->batch_size * sizeof(float))))
        rc = CREMA_ERR_NOMEM;
    if (!rc)
        rc = be->upload_side(be, b->dev_data, b->data, n * sizeof(float));
    if (!rc)
        rc = be->upload_side(be, b->dev_label, b->label, (size_t)pf->batch_size * sizeof(float));
    return rc;
}

int prefetch_set_device(struct prefetch *pf, const struct backend *be)
{
    if (pf->started || be->host_memory || !be->upload_side)
        return CREMA_OK;
    pf->be = be;
    for (int i = 0; i < pf->n_slots; i++) {
        struct prefetch_batch *b = &pf->slots[i];
        b->pin = be;
        if (be->host_register(be, b->label, (size_t)pf->batch_size * sizeof(float)))
            err_clear();
        if (b->data && be->host_register(be, b->data, b->cap * sizeof(float)))
            err_clear();
    }
    return CREMA_OK;
}

static void *prefetch_main(void *arg)
{
    struct prefetch *pf = arg;
    for (;;) {
        pthread_mutex_lock(&pf->mu);
        while (!pf->stop && pf->n_full == pf->n_slots)
            pthread_cond_wait(&pf->cv, &pf->mu);
        bool stop = pf->stop;
        int tail = (pf->head + pf->n_full) % pf->n_slots;
        if (pf->state && !stop)
            memcpy(mark_at(pf, tail), mark_at(pf, pf->n_slots), pf->mark_size);
        pthread_mutex_unlock(&pf->mu);
        if (stop)
            break;
        /* The consumer never touches a slot that is not full, so this one is ours. */
        int rc = pf->fill(pf->ctx, &pf->slots[tail]);
        if (!rc && pf->be)
            rc = upload_slot(pf, &pf->slots[tail]);
        pthread_mutex_lock(&pf->mu);
        if (pf->state && !rc) /* a failed batch leaves the next one where it began */
            memcpy(mark_at(pf, pf->n_slots), pf->state, pf->mark_size);
        if (rc) {
            pf->failed = true;
            pf->fail_rc = rc;
            snprintf(pf->fail_msg, sizeof pf->fail_msg, "%s", err_msg());
        } else {
            pf->n_full++;
        }
        pthread_cond_broadcast(&pf->cv);
        pthread_mutex_unlock(&pf->mu);
        if (rc)
            break;
    }
    return NULL;
}

int prefetch_forward(struct prefetch *pf, struct tensor *data, struct tensor *label, int label_axes)
{
    return prefetch_forward_on(pf, data, label, label_axes, NULL);
}

/* dst's copy on be (NULL: the host) from the slot's host or device buffer. */
static int slot_copy(struct prefetch *pf, const struct backend *be, struct tensor *dst, const float *host,
                     const float *dev)
{
    if (be && dev) {
        float *d = tensor_data_on(dst, be);
        if (!d)
            return CREMA_ERR_NOMEM;
        be->math->copy(be, dst->count, dev, d);
        return CREMA_OK;
    }
    float *d = tensor_data(dst);
    if (!d)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    memcpy(d, host, dst->count * sizeof(float));
    return CREMA_OK;
}

int prefetch_forward_on(struct prefetch *pf, struct tensor *data, struct tensor *label, int label_axes,
                        const struct backend *be)
{
    pthread_mutex_lock(&pf->mu);
    if (!pf->started) {
        if (pf->state)
            memcpy(mark_at(pf, pf->n_slots), pf->state, pf->mark_size);
        if (pthread_create(&pf->thread, NULL, prefetch_main, pf) != 0) {
            pthread_mutex_unlock(&pf->mu);
            return err_set(CREMA_ERR_NOMEM, "cannot start the prefetch thread");
        }
        pf->started = true;
    }
    while (pf->n_full == 0 && !pf->failed)
        pthread_cond_wait(&pf->cv, &pf->mu);
    if (pf->n_full == 0) {
        pthread_mutex_unlock(&pf->mu);
        return err_set(pf->fail_rc, "%s", pf->fail_msg);
    }
    struct prefetch_batch *b = &pf->slots[pf->head];
    pthread_mutex_unlock(&pf->mu);
    /* from the device staging only when the thread uploads to this backend */
    const struct backend *on = be && pf->be == be ? be : NULL;
    int rc = tensor_reshape4(data, pf->batch_size, b->c, b->h, b->w);
    if (!rc)
        rc = slot_copy(pf, on, data, b->data, on ? b->dev_data : NULL);
    if (!rc && label) {
        int one[4] = { pf->batch_size, 1, 1, 1 };
        rc = tensor_reshape(label, label_axes == 1 ? 1 : 4, one);
        if (!rc)
            rc = slot_copy(pf, on, label, b->label, on ? b->dev_label : NULL);
    }
    /* the thread refills the staging only after these copies ran */
    if (!rc && on)
        rc = on->mark(on, &b->consumed);
    pthread_mutex_lock(&pf->mu);
    pf->head = (pf->head + 1) % pf->n_slots;
    pf->n_full--;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    return rc;
}
