/* LMDB and LevelDB behind the db.h interface. Writes are buffered and
 * committed DB_BATCH_RECORDS at a time, as Caffe's convert tools do. */
#include "data/db.h"
#include "util/err.h"

#include <ctype.h>
#include <errno.h>
#include <lmdb.h>
#include <leveldb/c.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Initial LMDB map for new databases; doubled whenever a commit meets
 * MDB_MAP_FULL (a 1 TB map, as Caffe once used, fails where address space
 * is limited, e.g. under sanitizers). */
#define LMDB_INITIAL_MAP ((size_t)1 << 28)

struct pending {
    size_t n, cap;
    char **keys, **vals;
    size_t *klen, *vlen;
};

struct db {
    enum db_backend backend;
    char *path;
    bool writable;
    MDB_env *env;
    MDB_dbi dbi;
    size_t map_size;
    leveldb_t *ldb;
    leveldb_options_t *lopts;
    leveldb_readoptions_t *lropts;
    leveldb_writeoptions_t *lwopts;
    struct pending pend;
    size_t n_committed;
};

struct db_cursor {
    struct db *db;
    bool valid;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    leveldb_iterator_t *it;
};

int db_backend_parse(const char *name, enum db_backend *out)
{
    if (name && strcasecmp(name, "lmdb") == 0)
        *out = DB_LMDB;
    else if (name && strcasecmp(name, "leveldb") == 0)
        *out = DB_LEVELDB;
    else
        return err_set(CREMA_ERR_INVALID, "unknown db backend \"%s\" (lmdb or leveldb)", name ? name : "");
    return CREMA_OK;
}

const char *db_backend_name(enum db_backend b)
{
    return b == DB_LMDB ? "lmdb" : "leveldb";
}

const char *db_path(const struct db *db)
{
    return db->path;
}

static int lmdb_err(const struct db *db, const char *what, int rc)
{
    int code = rc == ENOENT ? CREMA_ERR_IO : rc == ENOMEM ? CREMA_ERR_NOMEM : CREMA_ERR_IO;
    if (rc == MDB_INVALID || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_VERSION_MISMATCH)
        code = CREMA_ERR_PARSE;
    return err_set(code, "%s: lmdb %s: %s", db->path, what, mdb_strerror(rc));
}

static struct db *db_alloc(const char *path, enum db_backend backend, bool writable)
{
    struct db *db = calloc(1, sizeof *db);
    if (!db)
        return NULL;
    db->path = strdup(path);
    if (!db->path) {
        free(db);
        return NULL;
    }
    db->backend = backend;
    db->writable = writable;
    return db;
}

static void pending_clear(struct pending *p)
{
    for (size_t i = 0; i < p->n; i++) {
        free(p->keys[i]);
        free(p->vals[i]);
    }
    p->n = 0;
}

static void db_free(struct db *db)
{
    if (!db)
        return;
    if (db->env)
        mdb_env_close(db->env);
    if (db->ldb)
        leveldb_close(db->ldb);
    if (db->lopts)
        leveldb_options_destroy(db->lopts);
    if (db->lropts)
        leveldb_readoptions_destroy(db->lropts);
    if (db->lwopts)
        leveldb_writeoptions_destroy(db->lwopts);
    pending_clear(&db->pend);
    free(db->pend.keys);
    free(db->pend.vals);
    free(db->pend.klen);
    free(db->pend.vlen);
    free(db->path);
    free(db);
}

/* LMDB maps the file and trusts its meta page: pages past the end of a
 * truncated file would be touched through the map and raise SIGBUS. So the
 * file must hold every page the meta page says is in use. */
static int lmdb_check_size(struct db *db, const char *file)
{
    MDB_envinfo info;
    MDB_stat st;
    int rc = mdb_env_info(db->env, &info);
    if (!rc)
        rc = mdb_env_stat(db->env, &st);
    if (rc)
        return lmdb_err(db, "reading the header", rc);
    struct stat fs;
    if (stat(file, &fs) != 0)
        return err_set(CREMA_ERR_IO, "%s: %s", file, strerror(errno));
    unsigned long long need = ((unsigned long long)info.me_last_pgno + 1) * st.ms_psize;
    if ((unsigned long long)fs.st_size < need)
        return err_set(CREMA_ERR_PARSE,
                       "%s: truncated or corrupt LMDB: the file has %lld bytes, its header says %llu are in use",
                       db->path, (long long)fs.st_size, need);
    return CREMA_OK;
}

static int lmdb_open(struct db *db, bool create)
{
    struct stat st;
    bool is_file = false;
    if (create) {
        if (mkdir(db->path, 0755) != 0)
            return err_set(CREMA_ERR_IO, "%s: cannot create the database directory: %s", db->path,
                           strerror(errno));
    } else {
        if (stat(db->path, &st) != 0)
            return err_set(CREMA_ERR_IO, "%s: %s", db->path, strerror(errno));
        is_file = S_ISREG(st.st_mode);
    }
    char *file = malloc(strlen(db->path) + 16);
    if (!file)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    sprintf(file, is_file ? "%s" : "%s/data.mdb", db->path);
    if (!create && stat(file, &st) != 0) {
        int e = errno;
        free(file);
        return err_set(CREMA_ERR_IO, "%s: not an LMDB database (no data.mdb: %s)", db->path, strerror(e));
    }
    int rc = mdb_env_create(&db->env);
    if (rc) {
        free(file);
        return lmdb_err(db, "env create", rc);
    }
    unsigned flags = is_file ? MDB_NOSUBDIR : 0;
    if (create) {
        db->map_size = LMDB_INITIAL_MAP;
        rc = mdb_env_set_mapsize(db->env, db->map_size);
        if (!rc)
            rc = mdb_env_open(db->env, db->path, flags, 0664);
    } else {
        rc = mdb_env_open(db->env, db->path, flags | MDB_RDONLY | MDB_NOTLS, 0664);
        if (rc == EACCES || rc == EROFS) {
            /* A read-only copy (shared, archived): no lock file can be made
             * or opened for writing; readers need none. */
            mdb_env_close(db->env);
            db->env = NULL;
            rc = mdb_env_create(&db->env);
            if (!rc)
                rc = mdb_env_open(db->env, db->path, flags | MDB_RDONLY | MDB_NOTLS | MDB_NOLOCK, 0664);
        }
    }
    if (rc) {
        free(file);
        return lmdb_err(db, "open", rc);
    }
    if (!create) {
        rc = lmdb_check_size(db, file);
        if (rc) {
            free(file);
            return rc;
        }
    }
    free(file);
    MDB_txn *txn = NULL;
    rc = mdb_txn_begin(db->env, NULL, create ? 0 : MDB_RDONLY, &txn);
    if (!rc)
        rc = mdb_dbi_open(txn, NULL, 0, &db->dbi);
    if (rc) {
        if (txn)
            mdb_txn_abort(txn);
        return lmdb_err(db, "open the main database", rc);
    }
    rc = create ? mdb_txn_commit(txn) : (mdb_txn_abort(txn), 0);
    if (rc)
        return lmdb_err(db, "commit", rc);
    return CREMA_OK;
}

static int leveldb_open_db(struct db *db, bool create)
{
    struct stat st;
    if (!create && stat(db->path, &st) != 0)
        return err_set(CREMA_ERR_IO, "%s: %s", db->path, strerror(errno));
    db->lopts = leveldb_options_create();
    db->lropts = leveldb_readoptions_create();
    db->lwopts = leveldb_writeoptions_create();
    if (!db->lopts || !db->lropts || !db->lwopts)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    leveldb_options_set_create_if_missing(db->lopts, create);
    leveldb_options_set_error_if_exists(db->lopts, create);
    /* Caffe's settings: a 4 MB block cache is LevelDB's default; Caffe asks
     * for large write buffers and fewer open files when writing. */
    if (create) {
        leveldb_options_set_write_buffer_size(db->lopts, 268435456);
        leveldb_options_set_max_open_files(db->lopts, 100);
    }
    leveldb_readoptions_set_fill_cache(db->lropts, 0);
    char *e = NULL;
    db->ldb = leveldb_open(db->lopts, db->path, &e);
    if (e) {
        int rc = err_set(CREMA_ERR_IO, "%s: leveldb open: %s", db->path, e);
        leveldb_free(e);
        return rc;
    }
    return CREMA_OK;
}

static int db_open_mode(const char *path, enum db_backend backend, bool create, struct db **out)
{
    *out = NULL;
    if (!path || !*path)
        return err_set(CREMA_ERR_INVALID, "no database path given");
    if (backend != DB_LMDB && backend != DB_LEVELDB)
        return err_set(CREMA_ERR_INVALID, "%s: unknown db backend %d", path, (int)backend);
    struct db *db = db_alloc(path, backend, create);
    if (!db)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    int rc = backend == DB_LMDB ? lmdb_open(db, create) : leveldb_open_db(db, create);
    if (rc) {
        db_free(db);
        return rc;
    }
    *out = db;
    return CREMA_OK;
}

int db_open_read(const char *path, enum db_backend backend, struct db **out)
{
    return db_open_mode(path, backend, false, out);
}

int db_create(const char *path, enum db_backend backend, struct db **out)
{
    return db_open_mode(path, backend, true, out);
}

int db_close(struct db *db)
{
    if (!db)
        return CREMA_OK;
    int rc = db->writable ? db_commit(db) : CREMA_OK;
    db_free(db);
    return rc;
}

int db_count(struct db *db, size_t *out)
{
    *out = 0;
    if (db->backend == DB_LMDB) {
        MDB_txn *txn = NULL;
        MDB_stat st;
        int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &txn);
        if (!rc)
            rc = mdb_stat(txn, db->dbi, &st);
        if (txn)
            mdb_txn_abort(txn);
        if (rc)
            return lmdb_err(db, "stat", rc);
        *out = st.ms_entries + (db->writable ? db->pend.n : 0);
        return CREMA_OK;
    }
    struct db_cursor *c;
    int rc = db_cursor_open(db, &c);
    size_t n = 0;
    while (!rc && db_cursor_valid(c)) {
        n++;
        rc = db_cursor_next(c);
    }
    db_cursor_close(c);
    *out = n + (db->writable ? db->pend.n : 0);
    return rc;
}

int db_put(struct db *db, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!db->writable)
        return err_set(CREMA_ERR_INVALID, "%s: database opened read-only", db->path);
    if (klen == 0)
        return err_set(CREMA_ERR_INVALID, "%s: empty key", db->path);
    struct pending *p = &db->pend;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 64;
        char **k = realloc(p->keys, cap * sizeof *k);
        if (k)
            p->keys = k;
        char **v = realloc(p->vals, cap * sizeof *v);
        if (v)
            p->vals = v;
        size_t *kl = realloc(p->klen, cap * sizeof *kl);
        if (kl)
            p->klen = kl;
        size_t *vl = realloc(p->vlen, cap * sizeof *vl);
        if (vl)
            p->vlen = vl;
        if (!k || !v || !kl || !vl)
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        p->cap = cap;
    }
    char *kc = malloc(klen), *vc = malloc(vlen ? vlen : 1);
    if (!kc || !vc) {
        free(kc);
        free(vc);
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    }
    memcpy(kc, key, klen);
    if (vlen)
        memcpy(vc, val, vlen);
    p->keys[p->n] = kc;
    p->vals[p->n] = vc;
    p->klen[p->n] = klen;
    p->vlen[p->n] = vlen;
    p->n++;
    if (p->n >= DB_BATCH_RECORDS)
        return db_commit(db);
    return CREMA_OK;
}

static int lmdb_commit_once(struct db *db)
{
    struct pending *p = &db->pend;
    MDB_txn *txn;
    int rc = mdb_txn_begin(db->env, NULL, 0, &txn);
    if (rc)
        return rc;
    for (size_t i = 0; i < p->n; i++) {
        MDB_val k = { p->klen[i], p->keys[i] }, v = { p->vlen[i], p->vals[i] };
        rc = mdb_put(txn, db->dbi, &k, &v, 0);
        if (rc) {
            mdb_txn_abort(txn);
            return rc;
        }
    }
    return mdb_txn_commit(txn);
}

int db_commit(struct db *db)
{
    struct pending *p = &db->pend;
    if (!db->writable || p->n == 0)
        return CREMA_OK;
    if (db->backend == DB_LMDB) {
        int rc;
        while ((rc = lmdb_commit_once(db)) == MDB_MAP_FULL) {
            if (db->map_size > ((size_t)1 << 46))
                break;
            db->map_size *= 2;
            rc = mdb_env_set_mapsize(db->env, db->map_size);
            if (rc)
                break;
        }
        if (rc) {
            int r = lmdb_err(db, "commit", rc);
            err_prefix(r, "records %zu..%zu", db->n_committed, db->n_committed + p->n - 1);
            return r;
        }
    } else {
        leveldb_writebatch_t *b = leveldb_writebatch_create();
        for (size_t i = 0; i < p->n; i++)
            leveldb_writebatch_put(b, p->keys[i], p->klen[i], p->vals[i], p->vlen[i]);
        char *e = NULL;
        leveldb_write(db->ldb, db->lwopts, b, &e);
        leveldb_writebatch_destroy(b);
        if (e) {
            int r = err_set(CREMA_ERR_IO, "%s: leveldb write of records %zu..%zu: %s", db->path,
                            db->n_committed, db->n_committed + p->n - 1, e);
            leveldb_free(e);
            return r;
        }
    }
    db->n_committed += p->n;
    pending_clear(p);
    return CREMA_OK;
}

static int lmdb_cursor_get(struct db_cursor *c, MDB_cursor_op op)
{
    int rc = mdb_cursor_get(c->cur, &c->k, &c->v, op);
    if (rc == MDB_NOTFOUND) {
        c->valid = false;
        return CREMA_OK;
    }
    if (rc) {
        c->valid = false;
        return lmdb_err(c->db, "cursor", rc);
    }
    c->valid = true;
    return CREMA_OK;
}

int db_cursor_open(struct db *db, struct db_cursor **out)
{
    *out = NULL;
    struct db_cursor *c = calloc(1, sizeof *c);
    if (!c)
        return err_set(CREMA_ERR_NOMEM, "out of memory");
    c->db = db;
    if (db->backend == DB_LMDB) {
        int rc = mdb_txn_begin(db->env, NULL, MDB_RDONLY, &c->txn);
        if (!rc)
            rc = mdb_cursor_open(c->txn, db->dbi, &c->cur);
        if (rc) {
            db_cursor_close(c);
            return lmdb_err(db, "cursor open", rc);
        }
    } else {
        c->it = leveldb_create_iterator(db->ldb, db->lropts);
        if (!c->it) {
            free(c);
            return err_set(CREMA_ERR_NOMEM, "out of memory");
        }
    }
    int rc = db_cursor_first(c);
    if (rc) {
        db_cursor_close(c);
        return rc;
    }
    *out = c;
    return CREMA_OK;
}

static int leveldb_iter_status(struct db_cursor *c)
{
    c->valid = leveldb_iter_valid(c->it);
    char *e = NULL;
    leveldb_iter_get_error(c->it, &e);
    if (e) {
        int r = err_set(CREMA_ERR_IO, "%s: leveldb: %s", c->db->path, e);
        leveldb_free(e);
        c->valid = false;
        return r;
    }
    return CREMA_OK;
}

int db_cursor_first(struct db_cursor *c)
{
    if (c->cur)
        return lmdb_cursor_get(c, MDB_FIRST);
    leveldb_iter_seek_to_first(c->it);
    return leveldb_iter_status(c);
}

int db_cursor_next(struct db_cursor *c)
{
    if (!c->valid)
        return err_set(CREMA_ERR_INVALID, "%s: cursor moved past the last record", c->db->path);
    if (c->cur)
        return lmdb_cursor_get(c, MDB_NEXT);
    leveldb_iter_next(c->it);
    return leveldb_iter_status(c);
}

bool db_cursor_valid(const struct db_cursor *c)
{
    return c->valid;
}

const uint8_t *db_cursor_key(const struct db_cursor *c, size_t *len)
{
    if (!c->valid) {
        *len = 0;
        return NULL;
    }
    if (c->cur) {
        *len = c->k.mv_size;
        return c->k.mv_data;
    }
    return (const uint8_t *)leveldb_iter_key(c->it, len);
}

const uint8_t *db_cursor_value(const struct db_cursor *c, size_t *len)
{
    if (!c->valid) {
        *len = 0;
        return NULL;
    }
    if (c->cur) {
        *len = c->v.mv_size;
        return c->v.mv_data;
    }
    return (const uint8_t *)leveldb_iter_value(c->it, len);
}

const char *db_cursor_key_text(const struct db_cursor *c, char *buf, size_t n)
{
    size_t len;
    const uint8_t *k = db_cursor_key(c, &len);
    size_t o = 0;
    if (n == 0)
        return buf;
    for (size_t i = 0; k && i < len && o + 5 < n; i++) {
        if (isprint(k[i]) && k[i] != '\\')
            buf[o++] = (char)k[i];
        else
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", k[i]);
    }
    buf[o] = 0;
    return buf;
}

void db_cursor_close(struct db_cursor *c)
{
    if (!c)
        return;
    if (c->cur)
        mdb_cursor_close(c->cur);
    if (c->txn)
        mdb_txn_abort(c->txn);
    if (c->it)
        leveldb_iter_destroy(c->it);
    free(c);
}
