/* protobuf's text format, read and printed generically over protobuf-c's
 * descriptors (protobuf-c itself has none), behaving as Caffe's TextFormat. */
#include "proto/proto_io.h"
#include "util/err.h"

#include <float.h>
#include <inttypes.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* protobuf's own parser stops at this depth too. */
#define TEXT_MAX_DEPTH 100

/* ------------------------------------------------------------------ lexer */

enum tok_kind { TOK_END, TOK_IDENT, TOK_INT, TOK_FLOAT, TOK_STRING, TOK_SYMBOL };

struct token {
    enum tok_kind kind;
    const char *text; /* points into the input */
    size_t len;
    size_t line, col; /* 1-based */
};

struct parser {
    const char *p, *end;
    size_t line, col;
    const char *file;
    struct token tok; /* the current, not yet consumed token */
};

static int perr_at(const struct parser *ps, size_t line, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int perr_at(const struct parser *ps, size_t line, size_t col, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return err_set(CREMA_ERR_PARSE, "%s:%zu:%zu: %s", ps->file, line, col, msg);
}

#define perr(ps, ...) perr_at((ps), (ps)->tok.line, (ps)->tok.col, __VA_ARGS__)

/* A printable rendering of the current token for messages. */
static const char *tok_describe(const struct token *t, char *buf, size_t n)
{
    if (t->kind == TOK_END)
        return "end of input";
    size_t len = t->len > 40 ? 40 : t->len;
    size_t o = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 5 < n; i++) {
        unsigned char c = (unsigned char)t->text[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf[o++] = (char)c;
        else
            o += (size_t)snprintf(buf + o, n - o, "\\%03o", c);
    }
    if (len < t->len && o + 4 < n) {
        memcpy(buf + o, "...", 3);
        o += 3;
    }
    buf[o++] = '"';
    buf[o] = 0;
    return buf;
}

static void lex_advance(struct parser *ps, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (ps->p[i] == '\n') {
            ps->line++;
            ps->col = 1;
        } else {
            ps->col++;
        }
    }
    ps->p += n;
}

static bool is_letter(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
static bool is_digit(int c) { return c >= '0' && c <= '9'; }
static bool is_hex(int c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Reads the next token into ps->tok. */
static int lex_next(struct parser *ps)
{
    /* Whitespace and # comments. */
    while (ps->p < ps->end) {
        char c = *ps->p;
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f') {
            lex_advance(ps, 1);
        } else if (c == '#') {
            const char *nl = memchr(ps->p, '\n', (size_t)(ps->end - ps->p));
            lex_advance(ps, nl ? (size_t)(nl - ps->p) : (size_t)(ps->end - ps->p));
        } else {
            break;
        }
    }
    struct token *t = &ps->tok;
    t->text = ps->p;
    t->line = ps->line;
    t->col = ps->col;
    t->len = 0;
    if (ps->p >= ps->end) {
        t->kind = TOK_END;
        return 0;
    }
    const char *s = ps->p, *e = ps->end;
    unsigned char c = (unsigned char)*s;
    size_t n = 0;
    if (is_letter(c)) {
        while (n < (size_t)(e - s) && (is_letter(s[n]) || is_digit(s[n])))
            n++;
        t->kind = TOK_IDENT;
    } else if (is_digit(c) || (c == '.' && s + 1 < e && is_digit(s[1]))) {
        bool is_float = false;
        size_t avail = (size_t)(e - s);
        if (c == '0' && avail > 1 && (s[1] == 'x' || s[1] == 'X')) {
            n = 2;
            while (n < avail && is_hex(s[n]))
                n++;
            if (n == 2)
                return perr(ps, "\"0x\" must be followed by hex digits");
        } else if (c == '0' && avail > 1 && is_digit(s[1])) {
            n = 1;
            while (n < avail && is_digit(s[n])) {
                if (s[n] > '7')
                    return perr(ps, "numbers starting with a leading zero must be in octal");
                n++;
            }
        } else {
            while (n < avail && is_digit(s[n]))
                n++;
            if (n < avail && s[n] == '.') {
                is_float = true;
                n++;
                while (n < avail && is_digit(s[n]))
                    n++;
            }
            if (n < avail && (s[n] == 'e' || s[n] == 'E')) {
                is_float = true;
                n++;
                if (n < avail && (s[n] == '+' || s[n] == '-'))
                    n++;
                if (n >= avail || !is_digit(s[n]))
                    return perr(ps, "\"e\" must be followed by an exponent");
                while (n < avail && is_digit(s[n]))
                    n++;
            }
            if (n < avail && (s[n] == 'f' || s[n] == 'F')) {
                is_float = true;
                n++;
            }
        }
        if (n < avail && (is_letter(s[n]) || is_digit(s[n]) || s[n] == '.'))
            return perr(ps, "need space between number and identifier");
        t->kind = is_float ? TOK_FLOAT : TOK_INT;
    } else if (c == '"' || c == '\'') {
        n = 1;
        for (;;) {
            if (s + n >= e)
                return perr(ps, "unterminated string (opened here)");
            char d = s[n];
            if (d == '\n')
                return perr(ps, "string literal cannot cross a line boundary (opened here)");
            if (d == '\\') {
                if (s + n + 1 >= e)
                    return perr(ps, "unterminated string (opened here)");
                if (s[n + 1] == '\n')
                    return perr(ps, "string literal cannot cross a line boundary (opened here)");
                n += 2;
                continue;
            }
            n++;
            if ((unsigned char)d == c)
                break;
        }
        t->kind = TOK_STRING;
    } else if (c < 0x20 || c >= 0x7f) {
        return perr(ps, "invalid character 0x%02x", c);
    } else {
        n = 1;
        t->kind = TOK_SYMBOL;
    }
    t->len = n;
    lex_advance(ps, n);
    return 0;
}

static bool tok_is(const struct token *t, enum tok_kind k, const char *text)
{
    size_t n = strlen(text);
    return t->kind == k && t->len == n && memcmp(t->text, text, n) == 0;
}

static bool tok_sym(const struct token *t, char c)
{
    return t->kind == TOK_SYMBOL && t->text[0] == c;
}

/* Consumes the symbol c if it is next. */
static int try_sym(struct parser *ps, char c, bool *got)
{
    *got = tok_sym(&ps->tok, c);
    return *got ? lex_next(ps) : 0;
}

static bool tok_ident_nocase(const struct token *t, const char *word)
{
    size_t n = strlen(word);
    if (t->kind != TOK_IDENT || t->len != n)
        return false;
    for (size_t i = 0; i < n; i++) {
        char a = t->text[i];
        if (a >= 'A' && a <= 'Z')
            a = (char)(a - 'A' + 'a');
        if (a != word[i])
            return false;
    }
    return true;
}

/* --------------------------------------------------------------- values */

/* An integer token as magnitude; false if it does not fit 64 bits. */
static bool int_token_value(const struct token *t, uint64_t *out)
{
    const char *s = t->text;
    size_t n = t->len, i = 0;
    unsigned base = 10;
    if (n > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    } else if (n > 1 && s[0] == '0') {
        base = 8;
        i = 1;
    }
    uint64_t v = 0;
    for (; i < n; i++) {
        unsigned d;
        char c = s[i];
        if (is_digit(c))
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            d = (unsigned)(c - 'A' + 10);
        if (v > (UINT64_MAX - d) / base)
            return false;
        v = v * base + d;
    }
    *out = v;
    return true;
}

/* strtod on a token, whatever the locale's radix character. */
static double token_strtod(const struct token *t)
{
    char buf[128];
    size_t n = t->len;
    if (n >= sizeof buf)
        n = sizeof buf - 1;
    memcpy(buf, t->text, n);
    buf[n] = 0;
    if (n > 0 && (buf[n - 1] == 'f' || buf[n - 1] == 'F'))
        buf[n - 1] = 0;
    const char *radix = localeconv()->decimal_point;
    if (radix && radix[0] && radix[0] != '.' && radix[1] == 0) {
        char *dot = strchr(buf, '.');
        if (dot)
            *dot = radix[0];
    }
    return strtod(buf, NULL);
}

static const char *type_name(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT32: return "int32";
    case PROTOBUF_C_TYPE_SINT32: return "sint32";
    case PROTOBUF_C_TYPE_SFIXED32: return "sfixed32";
    case PROTOBUF_C_TYPE_INT64: return "int64";
    case PROTOBUF_C_TYPE_SINT64: return "sint64";
    case PROTOBUF_C_TYPE_SFIXED64: return "sfixed64";
    case PROTOBUF_C_TYPE_UINT32: return "uint32";
    case PROTOBUF_C_TYPE_FIXED32: return "fixed32";
    case PROTOBUF_C_TYPE_UINT64: return "uint64";
    case PROTOBUF_C_TYPE_FIXED64: return "fixed64";
    case PROTOBUF_C_TYPE_FLOAT: return "float";
    case PROTOBUF_C_TYPE_DOUBLE: return "double";
    case PROTOBUF_C_TYPE_BOOL: return "bool";
    case PROTOBUF_C_TYPE_ENUM: return "enum";
    case PROTOBUF_C_TYPE_STRING: return "string";
    case PROTOBUF_C_TYPE_BYTES: return "bytes";
    case PROTOBUF_C_TYPE_MESSAGE: return "message";
    }
    return "?";
}

static size_t elem_size(ProtobufCType type)
{
    switch (type) {
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        return 8;
    case PROTOBUF_C_TYPE_DOUBLE:
        return sizeof(double);
    case PROTOBUF_C_TYPE_FLOAT:
        return sizeof(float);
    case PROTOBUF_C_TYPE_BOOL:
        return sizeof(protobuf_c_boolean);
    case PROTOBUF_C_TYPE_ENUM:
        return sizeof(int);
    case PROTOBUF_C_TYPE_STRING:
        return sizeof(char *);
    case PROTOBUF_C_TYPE_BYTES:
        return sizeof(ProtobufCBinaryData);
    case PROTOBUF_C_TYPE_MESSAGE:
        return sizeof(ProtobufCMessage *);
    default:
        return 4;
    }
}

#define MEMBER(msg, off) ((void *)((char *)(msg) + (off)))

/* Where the next value of field f goes: a fresh zeroed slot at the end of a
 * repeated field (grown geometrically), or the singular member itself. The
 * element counter is bumped only by commit_slot, so a half-parsed value is
 * never seen by protobuf_c_message_free_unpacked. */
static int field_slot(const struct parser *ps, ProtobufCMessage *msg,
                      const ProtobufCFieldDescriptor *f, void **slot)
{
    if (f->label != PROTOBUF_C_LABEL_REPEATED) {
        *slot = MEMBER(msg, f->offset);
        return 0;
    }
    size_t es = elem_size(f->type);
    size_t n = *(size_t *)MEMBER(msg, f->quantifier_offset);
    void **arr = MEMBER(msg, f->offset);
    if (n == 0 || (n & (n - 1)) == 0) {
        size_t cap = n ? n * 2 : 1;
        if (cap > SIZE_MAX / es)
            return perr(ps, "too many values for field \"%s\"", f->name);
        void *na = realloc(*arr, cap * es);
        if (!na)
            return err_set(CREMA_ERR_NOMEM, "%s: out of memory", ps->file);
        *arr = na;
    }
    *slot = (char *)*arr + n * es;
    memset(*slot, 0, es);
    return 0;
}

static void commit_slot(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
        (*(size_t *)MEMBER(msg, f->quantifier_offset))++;
    } else if (f->label == PROTOBUF_C_LABEL_OPTIONAL && f->type != PROTOBUF_C_TYPE_STRING &&
               f->type != PROTOBUF_C_TYPE_MESSAGE) {
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
            *(uint32_t *)MEMBER(msg, f->quantifier_offset) = f->id;
        else
            *(protobuf_c_boolean *)MEMBER(msg, f->quantifier_offset) = 1;
    }
}

/* Frees a singular string or bytes value about to be replaced, unless it is
 * the descriptor's static default. */
static void drop_old_string(ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return;
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        char **sp = MEMBER(msg, f->offset);
        if (*sp && *sp != f->default_value && *sp != protobuf_c_empty_string)
            free(*sp);
        *sp = NULL;
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        ProtobufCBinaryData *bd = MEMBER(msg, f->offset);
        const ProtobufCBinaryData *def = f->default_value;
        if (bd->data && (!def || bd->data != def->data))
            free(bd->data);
        bd->data = NULL;
        bd->len = 0;
    }
}

static int hexval(char c)
{
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10;
}

/* Appends the unescaped bytes of one string token to *buf. */
static int unescape_into(struct parser *ps, const struct token *t, char **buf, size_t *len)
{
    /* Unescaped text is never longer than the literal. */
    char *nb = realloc(*buf, *len + t->len + 1);
    if (!nb)
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", ps->file);
    *buf = nb;
    char *o = nb + *len;
    const char *s = t->text + 1, *e = t->text + t->len - 1;
    while (s < e) {
        if (*s != '\\') {
            *o++ = *s++;
            continue;
        }
        s++;
        char c = *s++;
        switch (c) {
        case 'a': *o++ = '\a'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'v': *o++ = '\v'; break;
        case '\\': *o++ = '\\'; break;
        case '?': *o++ = '?'; break;
        case '\'': *o++ = '\''; break;
        case '"': *o++ = '"'; break;
        case 'x':
        case 'X': {
            if (s >= e || !is_hex(*s))
                return perr_at(ps, t->line, t->col, "\\x in a string must be followed by hex digits");
            int v = 0;
            for (int k = 0; k < 2 && s < e && is_hex(*s); k++)
                v = v * 16 + hexval(*s++);
            *o++ = (char)v;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                int v = c - '0';
                for (int k = 0; k < 2 && s < e && *s >= '0' && *s <= '7'; k++)
                    v = v * 8 + (*s++ - '0');
                if (v > 255)
                    return perr_at(ps, t->line, t->col, "octal escape \\%o is out of range", (unsigned)v);
                *o++ = (char)v;
            } else {
                return perr_at(ps, t->line, t->col, "invalid escape sequence \"\\%c\" in string", c);
            }
        }
    }
    *len = (size_t)(o - nb);
    nb[*len] = 0;
    return 0;
}

struct field_ctx {
    const ProtobufCMessageDescriptor *mdesc;
    const ProtobufCFieldDescriptor *f;
};

static int expected(struct parser *ps, const struct field_ctx *fc, const char *what)
{
    char tb[200];
    return perr(ps, "field \"%s\" of %s: expected %s, got %s", fc->f->name, fc->mdesc->name, what,
                tok_describe(&ps->tok, tb, sizeof tb));
}

/* One integer value with an optional minus sign, checked against
 * [min, max] (for signed types) or [0, umax]. */
static int parse_integer(struct parser *ps, const struct field_ctx *fc, bool is_signed, int64_t min,
                         uint64_t umax, int64_t *sval, uint64_t *uval)
{
    bool neg;
    size_t line = ps->tok.line, col = ps->tok.col;
    int rc = try_sym(ps, '-', &neg);
    if (rc)
        return rc;
    const char *tn = type_name(fc->f->type);
    if (ps->tok.kind != TOK_INT) {
        char what[64];
        snprintf(what, sizeof what, "an integer (%s)", tn);
        return expected(ps, fc, what);
    }
    if (neg && !is_signed)
        return perr_at(ps, line, col, "field \"%s\" of %s: expected an unsigned integer (%s), got a negative number",
                       fc->f->name, fc->mdesc->name, tn);
    uint64_t mag;
    bool fits = int_token_value(&ps->tok, &mag);
    uint64_t limit = is_signed ? (neg ? (uint64_t)(-(min + 1)) + 1 : umax) : umax;
    if (!fits || mag > limit) {
        char tb[200];
        return perr_at(ps, line, col, "field \"%s\" of %s: integer %s%s is out of range for %s",
                       fc->f->name, fc->mdesc->name, neg ? "-" : "",
                       tok_describe(&ps->tok, tb, sizeof tb), tn);
    }
    if (is_signed)
        *sval = neg ? (mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag) : (int64_t)mag;
    else
        *uval = mag;
    return lex_next(ps);
}

static int parse_floating(struct parser *ps, const struct field_ctx *fc, double *out)
{
    bool neg;
    int rc = try_sym(ps, '-', &neg);
    if (rc)
        return rc;
    double v;
    if (ps->tok.kind == TOK_FLOAT) {
        v = token_strtod(&ps->tok);
    } else if (ps->tok.kind == TOK_INT) {
        uint64_t mag;
        if (int_token_value(&ps->tok, &mag))
            v = (double)mag;
        else
            v = token_strtod(&ps->tok); /* a long decimal: strtod reads it */
    } else if (tok_ident_nocase(&ps->tok, "inf") || tok_ident_nocase(&ps->tok, "infinity")) {
        v = INFINITY;
    } else if (tok_ident_nocase(&ps->tok, "nan")) {
        v = NAN;
    } else {
        return expected(ps, fc, fc->f->type == PROTOBUF_C_TYPE_FLOAT ? "a number (float)" : "a number (double)");
    }
    *out = neg ? -v : v;
    return lex_next(ps);
}

static int parse_enum(struct parser *ps, const struct field_ctx *fc, int *out)
{
    const ProtobufCEnumDescriptor *ed = fc->f->descriptor;
    const ProtobufCEnumValue *ev = NULL;
    size_t line = ps->tok.line, col = ps->tok.col;
    char tb[200];
    if (ps->tok.kind == TOK_IDENT) {
        char name[128];
        if (ps->tok.len < sizeof name) {
            memcpy(name, ps->tok.text, ps->tok.len);
            name[ps->tok.len] = 0;
            ev = protobuf_c_enum_descriptor_get_value_by_name(ed, name);
        }
        if (!ev)
            goto unknown;
        *out = ev->value;
        return lex_next(ps);
    }
    if (ps->tok.kind == TOK_INT || tok_sym(&ps->tok, '-')) {
        int64_t v;
        int rc = parse_integer(ps, fc, true, INT32_MIN, INT32_MAX, &v, NULL);
        if (rc)
            return rc;
        ev = protobuf_c_enum_descriptor_get_value(ed, (int)v);
        if (!ev)
            return perr_at(ps, line, col, "field \"%s\" of %s: %lld is not a value of enum %s",
                           fc->f->name, fc->mdesc->name, (long long)v, ed->name);
        *out = (int)v;
        return 0;
    }
unknown:;
    /* List the allowed names: the message is what a user fixes the file from. */
    char names[256];
    size_t o = 0;
    names[0] = 0;
    for (unsigned i = 0; i < ed->n_values && o + 1 < sizeof names; i++)
        o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "", ed->values[i].name);
    return perr_at(ps, line, col, "field \"%s\" of %s: expected a value of enum %s (%s), got %s",
                   fc->f->name, fc->mdesc->name, ed->name, names, tok_describe(&ps->tok, tb, sizeof tb));
}

static int parse_message_body(struct parser *ps, ProtobufCMessage *msg, int depth, char close);

/* One value of field f, stored into msg. */
static int parse_value(struct parser *ps, ProtobufCMessage *msg, const struct field_ctx *fc, int depth)
{
    const ProtobufCFieldDescriptor *f = fc->f;
    void *slot;
    int rc;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        char close;
        if (tok_sym(&ps->tok, '{'))
            close = '}';
        else if (tok_sym(&ps->tok, '<'))
            close = '>';
        else
            return expected(ps, fc, "\"{\" or \"<\"");
        if (depth + 1 > TEXT_MAX_DEPTH)
            return perr(ps, "field \"%s\" of %s: messages nested deeper than %d", f->name,
                        fc->mdesc->name, TEXT_MAX_DEPTH);
        if ((rc = lex_next(ps)))
            return rc;
        const ProtobufCMessageDescriptor *sd = f->descriptor;
        /* A singular message that is already there takes the new fields
         * (protobuf's Merge; within one text a second one is refused). */
        ProtobufCMessage **have = MEMBER(msg, f->offset);
        if (f->label != PROTOBUF_C_LABEL_REPEATED && *have)
            return parse_message_body(ps, *have, depth + 1, close);
        ProtobufCMessage *sub = malloc(sd->sizeof_message);
        if (!sub)
            return err_set(CREMA_ERR_NOMEM, "%s: out of memory", ps->file);
        protobuf_c_message_init(sd, sub);
        if ((rc = field_slot(ps, msg, f, &slot))) {
            protobuf_c_message_free_unpacked(sub, NULL);
            return rc;
        }
        *(ProtobufCMessage **)slot = sub;
        commit_slot(msg, f);
        return parse_message_body(ps, sub, depth + 1, close);
    }
    if (f->type == PROTOBUF_C_TYPE_STRING || f->type == PROTOBUF_C_TYPE_BYTES) {
        if (ps->tok.kind != TOK_STRING)
            return expected(ps, fc, "a quoted string");
        char *buf = NULL;
        size_t len = 0;
        while (ps->tok.kind == TOK_STRING) {
            if ((rc = unescape_into(ps, &ps->tok, &buf, &len)) || (rc = lex_next(ps))) {
                free(buf);
                return rc;
            }
        }
        drop_old_string(msg, f);
        if ((rc = field_slot(ps, msg, f, &slot))) {
            free(buf);
            return rc;
        }
        if (f->type == PROTOBUF_C_TYPE_STRING) {
            *(char **)slot = buf;
        } else {
            ProtobufCBinaryData *bd = slot;
            bd->data = (uint8_t *)buf;
            bd->len = len;
        }
        commit_slot(msg, f);
        return 0;
    }

    union {
        int32_t i32;
        uint32_t u32;
        int64_t i64;
        uint64_t u64;
        float fl;
        double db;
        protobuf_c_boolean b;
        int e;
    } v;
    int64_t s = 0;
    uint64_t u = 0;
    double d = 0;
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        rc = parse_integer(ps, fc, true, INT32_MIN, INT32_MAX, &s, &u);
        v.i32 = (int32_t)s;
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        rc = parse_integer(ps, fc, true, INT64_MIN, INT64_MAX, &s, &u);
        v.i64 = s;
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        rc = parse_integer(ps, fc, false, 0, UINT32_MAX, &s, &u);
        v.u32 = (uint32_t)u;
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        rc = parse_integer(ps, fc, false, 0, UINT64_MAX, &s, &u);
        v.u64 = u;
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        rc = parse_floating(ps, fc, &d);
        v.fl = (float)d;
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        rc = parse_floating(ps, fc, &d);
        v.db = d;
        break;
    case PROTOBUF_C_TYPE_BOOL:
        if (tok_is(&ps->tok, TOK_IDENT, "true") || tok_is(&ps->tok, TOK_IDENT, "True") ||
            tok_is(&ps->tok, TOK_IDENT, "t")) {
            v.b = 1;
        } else if (tok_is(&ps->tok, TOK_IDENT, "false") || tok_is(&ps->tok, TOK_IDENT, "False") ||
                   tok_is(&ps->tok, TOK_IDENT, "f")) {
            v.b = 0;
        } else if (ps->tok.kind == TOK_INT && int_token_value(&ps->tok, &u) && u <= 1) {
            v.b = (protobuf_c_boolean)u;
        } else {
            return expected(ps, fc, "a boolean (true, false, t, f, 1, 0)");
        }
        rc = lex_next(ps);
        break;
    case PROTOBUF_C_TYPE_ENUM:
        rc = parse_enum(ps, fc, &v.e);
        break;
    default:
        return perr(ps, "field \"%s\" of %s: unsupported type", f->name, fc->mdesc->name);
    }
    if (rc)
        return rc;
    if ((rc = field_slot(ps, msg, f, &slot)))
        return rc;
    memcpy(slot, &v, elem_size(f->type));
    commit_slot(msg, f);
    return 0;
}

/* Reads `field: value`, `field { ... }` or `field: [v, v]` entries until
 * close ('}' or '>'), or until the end of input at the top level (close 0). */
static int parse_message_body(struct parser *ps, ProtobufCMessage *msg, int depth, char close)
{
    const ProtobufCMessageDescriptor *md = msg->descriptor;
    unsigned char *seen = calloc(md->n_fields ? md->n_fields : 1, 1);
    if (!seen)
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", ps->file);
    int rc = 0;
    char tb[200];
    for (;;) {
        if (close ? tok_sym(&ps->tok, close) : ps->tok.kind == TOK_END)
            break;
        if (ps->tok.kind == TOK_END) {
            rc = perr(ps, "unexpected end of input in %s: expected \"%c\"", md->name, close);
            goto out;
        }
        if (ps->tok.kind != TOK_IDENT) {
            rc = perr(ps, "in %s: expected a field name, got %s", md->name,
                      tok_describe(&ps->tok, tb, sizeof tb));
            goto out;
        }
        const ProtobufCFieldDescriptor *f = NULL;
        char name[128];
        if (ps->tok.len < sizeof name) {
            memcpy(name, ps->tok.text, ps->tok.len);
            name[ps->tok.len] = 0;
            f = protobuf_c_message_descriptor_get_field_by_name(md, name);
        }
        if (!f) {
            rc = perr(ps, "message type \"%s\" has no field named %s", md->name,
                      tok_describe(&ps->tok, tb, sizeof tb));
            goto out;
        }
        struct field_ctx fc = { md, f };
        unsigned idx = (unsigned)(f - md->fields);
        if (f->label != PROTOBUF_C_LABEL_REPEATED && seen[idx]) {
            rc = perr(ps, "non-repeated field \"%s\" of %s is specified multiple times", f->name, md->name);
            goto out;
        }
        seen[idx] = 1;
        if ((rc = lex_next(ps)))
            goto out;
        bool colon;
        if ((rc = try_sym(ps, ':', &colon)))
            goto out;
        if (!colon && f->type != PROTOBUF_C_TYPE_MESSAGE) {
            rc = expected(ps, &fc, "\":\"");
            goto out;
        }
        bool list;
        if ((rc = try_sym(ps, '[', &list)))
            goto out;
        if (list) {
            if (f->label != PROTOBUF_C_LABEL_REPEATED) {
                rc = perr(ps, "field \"%s\" of %s is not repeated, so it cannot take a [list]", f->name, md->name);
                goto out;
            }
            bool done;
            if ((rc = try_sym(ps, ']', &done)))
                goto out;
            while (!done) {
                if ((rc = parse_value(ps, msg, &fc, depth)))
                    goto out;
                if ((rc = try_sym(ps, ']', &done)))
                    goto out;
                if (!done) {
                    bool comma;
                    if ((rc = try_sym(ps, ',', &comma)))
                        goto out;
                    if (!comma) {
                        rc = expected(ps, &fc, "\",\" or \"]\"");
                        goto out;
                    }
                }
            }
        } else if ((rc = parse_value(ps, msg, &fc, depth))) {
            goto out;
        }
        bool sep;
        if ((rc = try_sym(ps, ';', &sep)))
            goto out;
        if (!sep && (rc = try_sym(ps, ',', &sep)))
            goto out;
    }
    for (unsigned i = 0; i < md->n_fields; i++) {
        if (md->fields[i].label == PROTOBUF_C_LABEL_REQUIRED && !seen[i]) {
            rc = perr(ps, "message %s is missing its required field \"%s\"", md->name, md->fields[i].name);
            goto out;
        }
    }
    if (close)
        rc = lex_next(ps);
out:
    free(seen);
    return rc;
}

int proto_merge_text(ProtobufCMessage *msg, const char *text, size_t len, const char *filename)
{
    struct parser ps = { .p = text, .end = text + len, .line = 1, .col = 1,
                         .file = filename ? filename : "<text>" };
    int rc = lex_next(&ps);
    if (!rc)
        rc = parse_message_body(&ps, msg, 0, 0);
    return rc;
}

int proto_parse_text(const ProtobufCMessageDescriptor *desc, const char *text, size_t len,
                     const char *filename, ProtobufCMessage **out)
{
    *out = NULL;
    ProtobufCMessage *msg = malloc(desc->sizeof_message);
    if (!msg)
        return err_set(CREMA_ERR_NOMEM, "%s: out of memory", filename ? filename : "<text>");
    protobuf_c_message_init(desc, msg);
    int rc = proto_merge_text(msg, text, len, filename);
    if (rc) {
        protobuf_c_message_free_unpacked(msg, NULL);
        return rc;
    }
    *out = msg;
    return CREMA_OK;
}

/* -------------------------------------------------------------- printer */

struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) {
            b->oom = true;
            return;
        }
        b->p = np;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_puts(struct sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_indent(struct sbuf *b, int indent)
{
    for (int i = 0; i < indent; i++)
        sb_put(b, "  ", 2);
}

/* printf output may use the locale's radix character; the format wants '.'. */
static void delocalize(char *s)
{
    for (; *s; s++)
        if (!(is_digit(*s) || *s == '-' || *s == '+' || *s == 'e' || *s == 'E' || *s == '.' ||
              (*s >= 'a' && *s <= 'z')))
            *s = '.';
}

/* The shortest of %.6g / %.9g that reads back to the same float, as
 * protobuf's SimpleFtoa does; doubles use %.15g / %.17g. */
static void format_real(char *buf, size_t n, double v, bool is_float)
{
    if (isnan(v)) {
        snprintf(buf, n, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, n, v < 0 ? "-inf" : "inf");
        return;
    }
    if (is_float) {
        float f = (float)v;
        snprintf(buf, n, "%.*g", FLT_DIG, (double)f);
        delocalize(buf);
        struct token t = { TOK_FLOAT, buf, strlen(buf), 0, 0 };
        if ((float)token_strtod(&t) != f)
            snprintf(buf, n, "%.*g", FLT_DIG + 3, (double)f);
    } else {
        snprintf(buf, n, "%.*g", DBL_DIG, v);
        delocalize(buf);
        struct token t = { TOK_FLOAT, buf, strlen(buf), 0, 0 };
        if (token_strtod(&t) != v)
            snprintf(buf, n, "%.*g", DBL_DIG + 2, v);
    }
    delocalize(buf);
}

static void print_escaped(struct sbuf *b, const uint8_t *s, size_t n)
{
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        char e[8];
        switch (c) {
        case '\n': sb_put(b, "\\n", 2); break;
        case '\r': sb_put(b, "\\r", 2); break;
        case '\t': sb_put(b, "\\t", 2); break;
        case '"': sb_put(b, "\\\"", 2); break;
        case '\'': sb_put(b, "\\'", 2); break;
        case '\\': sb_put(b, "\\\\", 2); break;
        default:
            if (c >= 0x20 && c < 0x7f) {
                sb_put(b, (const char *)&c, 1);
            } else {
                snprintf(e, sizeof e, "\\%03o", c);
                sb_put(b, e, 4);
            }
        }
    }
    sb_put(b, "\"", 1);
}

static void print_message(struct sbuf *b, const ProtobufCMessage *msg, int indent);

/* A number, boolean or enum value as the format writes it. */
static void format_scalar(char *buf, size_t n, const ProtobufCFieldDescriptor *f, const void *v)
{
    switch (f->type) {
    case PROTOBUF_C_TYPE_INT32:
    case PROTOBUF_C_TYPE_SINT32:
    case PROTOBUF_C_TYPE_SFIXED32:
        snprintf(buf, n, "%" PRId32, *(const int32_t *)v);
        break;
    case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_FIXED32:
        snprintf(buf, n, "%" PRIu32, *(const uint32_t *)v);
        break;
    case PROTOBUF_C_TYPE_INT64:
    case PROTOBUF_C_TYPE_SINT64:
    case PROTOBUF_C_TYPE_SFIXED64:
        snprintf(buf, n, "%" PRId64, *(const int64_t *)v);
        break;
    case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_FIXED64:
        snprintf(buf, n, "%" PRIu64, *(const uint64_t *)v);
        break;
    case PROTOBUF_C_TYPE_FLOAT:
        format_real(buf, n, *(const float *)v, true);
        break;
    case PROTOBUF_C_TYPE_DOUBLE:
        format_real(buf, n, *(const double *)v, false);
        break;
    case PROTOBUF_C_TYPE_BOOL:
        snprintf(buf, n, "%s", *(const protobuf_c_boolean *)v ? "true" : "false");
        break;
    case PROTOBUF_C_TYPE_ENUM: {
        int e = *(const int *)v;
        const ProtobufCEnumValue *ev = protobuf_c_enum_descriptor_get_value(f->descriptor, e);
        if (ev)
            snprintf(buf, n, "%s", ev->name);
        else
            snprintf(buf, n, "%d", e);
        break;
    }
    default:
        buf[0] = 0;
    }
}

static void print_value(struct sbuf *b, const ProtobufCFieldDescriptor *f, const void *v, int indent)
{
    char buf[64];
    sb_indent(b, indent);
    sb_puts(b, f->name);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        sb_put(b, " {\n", 3);
        print_message(b, *(ProtobufCMessage *const *)v, indent + 1);
        sb_indent(b, indent);
        sb_put(b, "}\n", 2);
        return;
    }
    sb_put(b, ": ", 2);
    if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(const char *const *)v;
        print_escaped(b, (const uint8_t *)(s ? s : ""), s ? strlen(s) : 0);
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        const ProtobufCBinaryData *bd = v;
        print_escaped(b, bd->data, bd->data ? bd->len : 0);
    } else {
        format_scalar(buf, sizeof buf, f, v);
        sb_puts(b, buf);
    }
    sb_put(b, "\n", 1);
}

/* Whether a singular field is set, by the rule protobuf-c's packer uses. */
static bool field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    const void *member = (const char *)msg + f->offset;
    if (f->type == PROTOBUF_C_TYPE_MESSAGE || f->type == PROTOBUF_C_TYPE_STRING) {
        const void *ptr = *(const void *const *)member;
        if (f->label == PROTOBUF_C_LABEL_REQUIRED)
            return ptr != NULL;
        return ptr != NULL && ptr != f->default_value;
    }
    if (f->label == PROTOBUF_C_LABEL_REQUIRED)
        return true;
    if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF)
        return *(const uint32_t *)((const char *)msg + f->quantifier_offset) == f->id;
    if (f->label == PROTOBUF_C_LABEL_OPTIONAL)
        return *(const protobuf_c_boolean *)((const char *)msg + f->quantifier_offset) != 0;
    /* proto3 singular: set when not zero. */
    static const uint8_t zero[16];
    return memcmp(member, zero, elem_size(f->type)) != 0;
}

/* Fields in number order, as protobuf's Reflection::ListFields gives them
 * (protobuf-c keeps its descriptors' fields sorted by number). */
static void print_message(struct sbuf *b, const ProtobufCMessage *msg, int indent)
{
    const ProtobufCMessageDescriptor *md = msg->descriptor;
    for (unsigned i = 0; i < md->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &md->fields[i];
        const char *member = (const char *)msg + f->offset;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            size_t n = *(const size_t *)((const char *)msg + f->quantifier_offset);
            const char *arr = *(const char *const *)member;
            size_t es = elem_size(f->type);
            for (size_t k = 0; k < n; k++)
                print_value(b, f, arr + k * es, indent);
        } else if (field_present(msg, f)) {
            print_value(b, f, member, indent);
        }
    }
}

int proto_print_text(const ProtobufCMessage *msg, char **out, size_t *len)
{
    struct sbuf b = { 0 };
    sb_put(&b, "", 0);
    print_message(&b, msg, 0);
    if (b.oom) {
        free(b.p);
        *out = NULL;
        if (len)
            *len = 0;
        return err_set(CREMA_ERR_NOMEM, "out of memory printing a %s", msg->descriptor->name);
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return CREMA_OK;
}

int proto_format_value(const ProtobufCFieldDescriptor *f, const void *v, char **out, size_t *len)
{
    struct sbuf b = { 0 };
    char buf[64];
    sb_put(&b, "", 0);
    if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
        print_message(&b, *(ProtobufCMessage *const *)v, 0);
    } else if (f->type == PROTOBUF_C_TYPE_STRING) {
        const char *s = *(const char *const *)v;
        if (s)
            sb_puts(&b, s);
    } else if (f->type == PROTOBUF_C_TYPE_BYTES) {
        const ProtobufCBinaryData *bd = v;
        if (bd->data)
            sb_put(&b, (const char *)bd->data, bd->len);
    } else {
        format_scalar(buf, sizeof buf, f, v);
        sb_puts(&b, buf);
    }
    if (b.oom) {
        free(b.p);
        *out = NULL;
        return err_set(CREMA_ERR_NOMEM, "out of memory printing field %s", f->name);
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return CREMA_OK;
}

bool proto_field_present(const ProtobufCMessage *msg, const ProtobufCFieldDescriptor *f)
{
    if (f->label == PROTOBUF_C_LABEL_REPEATED)
        return *(const size_t *)((const char *)msg + f->quantifier_offset) > 0;
    return field_present(msg, f);
}

size_t proto_field_elem_size(const ProtobufCFieldDescriptor *f) { return elem_size(f->type); }

const char *proto_field_type_name(const ProtobufCFieldDescriptor *f)
{
    if (f->type == PROTOBUF_C_TYPE_MESSAGE)
        return ((const ProtobufCMessageDescriptor *)f->descriptor)->name;
    return type_name(f->type);
}
