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
        free(pf->slots[i].data);
        free(pf->slots[i].label);
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
        float *d = realloc(b->data, need * sizeof(float));
        if (!d)
            return err_set(CREMA_ERR_NOMEM, "out of memory for a batch of %zu floats", need);
        b->data = d;
        b->cap = need;
    }
    b->c = c;
    b->h = h;
    b->w = w;
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
    int rc = tensor_reshape4(data, pf->batch_size, b->c, b->h, b->w);
    float *d = rc ? NULL : tensor_data(data);
    if (d)
        memcpy(d, b->data, data->count * sizeof(float));
    else if (!rc)
        rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    if (!rc && label) {
        int one[4] = { pf->batch_size, 1, 1, 1 };
        rc = tensor_reshape(label, label_axes == 1 ? 1 : 4, one);
        float *lab = rc ? NULL : tensor_data(label);
        if (lab)
            memcpy(lab, b->label, (size_t)pf->batch_size * sizeof(float));
        else if (!rc)
            rc = err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_lock(&pf->mu);
    pf->head = (pf->head + 1) % pf->n_slots;
    pf->n_full--;
    pthread_cond_broadcast(&pf->cv);
    pthread_mutex_unlock(&pf->mu);
    return rc;
}
