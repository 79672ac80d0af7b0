/* Key-value databases of records, as Caffe's db::DB: LMDB and LevelDB behind
 * one small interface (open, cursor, count, batched puts). */
#ifndef CREMA_DATA_DB_H
#define CREMA_DATA_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum db_backend { DB_LEVELDB = 0, DB_LMDB = 1 }; /* DataParameter.DB numbering */

/* Caffe's convert tools commit every this many records. */
#define DB_BATCH_RECORDS 1000

struct db;
struct db_cursor;

/* Parses "lmdb" / "leveldb" (any case). */
int db_backend_parse(const char *name, enum db_backend *out);
const char *db_backend_name(enum db_backend b);

/* Opens an existing database read-only. A missing path, a file that is not
 * such a database, or a truncated LMDB is an error naming the path. */
int db_open_read(const char *path, enum db_backend backend, struct db **out);
/* Creates a new database (the path must not exist, as Caffe's db::NEW). */
int db_create(const char *path, enum db_backend backend, struct db **out);
/* Commits pending puts (when writing) and closes. Returns the commit status. */
int db_close(struct db *db);
const char *db_path(const struct db *db);

/* Number of records (LMDB: from its statistics; LevelDB: by iterating). */
int db_count(struct db *db, size_t *out);

/* Adds one record; puts are committed in transactions of DB_BATCH_RECORDS. */
int db_put(struct db *db, const void *key, size_t klen, const void *val, size_t vlen);
/* Commits the puts made so far. */
int db_commit(struct db *db);

/* Cursors walk the records in key order. Opened positioned on the first
 * record (db_cursor_valid false if the database is empty). */
int db_cursor_open(struct db *db, struct db_cursor **out);
int db_cursor_first(struct db_cursor *c);
int db_cursor_next(struct db_cursor *c);
bool db_cursor_valid(const struct db_cursor *c);
/* Key and value of the current record; valid until the cursor moves. */
const uint8_t *db_cursor_key(const struct db_cursor *c, size_t *len);
const uint8_t *db_cursor_value(const struct db_cursor *c, size_t *len);
/* The key as printable text for messages (non-printing bytes escaped). */
const char *db_cursor_key_text(const struct db_cursor *c, char *buf, size_t n);
void db_cursor_close(struct db_cursor *c);

#endif
