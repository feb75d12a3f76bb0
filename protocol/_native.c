/* The scanner's inner loop in C: walk an encoded Kafka message along a compiled program and report
 * the wanted fields. Python compiles the program (tenantry.protocol.scan_program) from the same schema
 * facts the pure-Python scanner (tenantry.protocol.scanner) walks with closures, and the two must agree
 * on every input: the same refs for a valid message, a DecodeError for every invalid one. The Python
 * scanner stays the reference; the property tests run both.
 *
 * Every read is checked against the end of the buffer (or of the enclosing tagged field). Lengths are
 * held in 64 bits, so no length a peer sends can overflow the arithmetic.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* Opcodes: keep in step with protocol/scan_program.py. */
enum {
    OP_END = 0,        /* end of a body */
    OP_SKIP = 1,       /* n: skip n bytes, checked */
    OP_SKIP_ANY = 2,   /* n: skip n bytes unchecked (fixed-size array elements, as the reference does) */
    OP_SIZED = 3,      /* compact wide: skip a string (wide=0) or bytes (wide=1) value */
    OP_REF = 4,        /* const: report a wanted field; consts[const] = (entity, type, compact, kind, size) */
    OP_ARRAY = 5,      /* compact body_len body...: an array of elements */
    OP_NULLABLE = 6,   /* body_len body...: a nullable struct (int8 marker) */
    OP_TAGS = 7,       /* n then n x (tag, body_len, body...): a flexible struct's tagged fields */
};

/* Value kinds of OP_REF constants. */
enum { K_INT = 0, K_UINT = 1, K_FLOAT = 2, K_BOOL = 3, K_UUID = 4, K_STRING = 5, K_BYTES = 6, K_RECORDS = 7 };

#define MAX_TAG_DEPTH 32

typedef struct {
    const int32_t *code;
    Py_ssize_t code_len;
    PyObject *consts;     /* tuple of (entity, type, compact, kind, size) */
    const uint8_t *buf;
    PyObject *view;       /* the caller's memoryview, sliced for records values */
    PyObject *out;        /* list of refs */
    int64_t tags[MAX_TAG_DEPTH][3];
    int depth;
} Scan;

static PyObject *DecodeError, *RefType, *TagSpanType, *UuidType, *UuidUnknownSafety, *EmptyTuple, *IntName, *IsSafeName;

static int fail(const char *message) {
    PyErr_SetString(DecodeError, message);
    return -1;
}

static int read_uvarint(const Scan *s, int64_t *pos, int64_t end, int64_t *value) {
    uint64_t result = 0;
    int shift = 0;
    for (;;) {
        if (*pos >= end) return fail("message is truncated");
        uint8_t byte = s->buf[(*pos)++];
        result |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) break;
        shift += 7;
        if (shift > 28) return fail("unsigned varint longer than 5 bytes");
    }
    *value = (int64_t)result;
    return 0;
}

static int64_t be(const uint8_t *p, int size) {
    uint64_t v = 0;
    for (int i = 0; i < size; i++) v = (v << 8) | p[i];
    return (int64_t)v;
}

/* A length prefix: compact (uvarint n+1) or classic (int16 for strings, int32 for bytes and arrays). */
static int read_length(const Scan *s, int64_t *pos, int64_t end, int compact, int wide, int64_t *n) {
    if (compact) {
        if (read_uvarint(s, pos, end, n) < 0) return -1;
        *n -= 1;
        return 0;
    }
    int size = wide ? 4 : 2;
    if (*pos + size > end) return fail("message is truncated");
    int64_t raw = be(s->buf + *pos, size);
    *n = wide ? (int64_t)(int32_t)raw : (int64_t)(int16_t)raw;
    *pos += size;
    return 0;
}

static PyObject *current_tags(const Scan *s) {
    PyObject *tags = PyTuple_New(s->depth);
    if (tags == NULL) return NULL;
    for (int i = 0; i < s->depth; i++) {
        PyObject *span = PyObject_CallFunction(TagSpanType, "LLL", (long long)s->tags[i][0],
                                               (long long)s->tags[i][1], (long long)s->tags[i][2]);
        if (span == NULL) { Py_DECREF(tags); return NULL; }
        PyTuple_SET_ITEM(tags, i, span);
    }
    return tags;
}

static PyObject *ref_value(const Scan *s, int64_t *pos, int64_t end, int compact, int kind, int size) {
    int64_t start = *pos, n;
    switch (kind) {
    case K_INT: case K_UINT: case K_FLOAT: case K_BOOL: {
        if (start + size > end) { fail("message is truncated"); return NULL; }
        const uint8_t *p = s->buf + start;
        *pos = start + size;
        if (kind == K_BOOL) return PyBool_FromLong(p[0] != 0);
        if (kind == K_FLOAT) {
            uint64_t bits = (uint64_t)be(p, 8);
            double d;
            memcpy(&d, &bits, sizeof d);
            return PyFloat_FromDouble(d);
        }
        int64_t v = be(p, size);
        if (kind == K_UINT) return PyLong_FromLongLong(v);
        if (size == 1) v = (int8_t)v;
        else if (size == 2) v = (int16_t)v;
        else if (size == 4) v = (int32_t)v;
        return PyLong_FromLongLong(v);
    }
    case K_UUID: {
        if (start + 16 > end) { fail("length runs past the end of the message"); return NULL; }
        *pos = start + 16;
        /* uuid.UUID(bytes=...) without running its __init__ in Python: object.__new__(UUID) and its two
         * slots, as UUID.__init__ leaves them (int, and is_safe = SafeUUID.unknown). */
        PyObject *number = _PyLong_FromByteArray(s->buf + start, 16, 0, 0);
        if (number == NULL) return NULL;
        PyObject *value = PyBaseObject_Type.tp_new((PyTypeObject *)UuidType, EmptyTuple, NULL);
        if (value == NULL || PyObject_GenericSetAttr(value, IntName, number) < 0 ||
            PyObject_GenericSetAttr(value, IsSafeName, UuidUnknownSafety) < 0) {
            Py_XDECREF(value);
            value = NULL;
        }
        Py_DECREF(number);
        return value;
    }
    default: {  /* string, bytes, records */
        if (read_length(s, pos, end, compact, kind != K_STRING, &n) < 0) return NULL;
        if (n < 0) Py_RETURN_NONE;
        if (*pos + n > end) { fail("length runs past the end of the message"); return NULL; }
        const char *p = (const char *)s->buf + *pos;
        int64_t from = *pos;
        *pos += n;
        if (kind == K_STRING) {
            PyObject *text = PyUnicode_DecodeUTF8(p, (Py_ssize_t)n, "strict");
            if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                fail("string is not UTF-8");
            }
            return text;
        }
        if (kind == K_BYTES) return PyBytes_FromStringAndSize(p, (Py_ssize_t)n);
        return PySequence_GetSlice(s->view, (Py_ssize_t)from, (Py_ssize_t)(from + n));
    }
    }
}

static int emit(Scan *s, int64_t *pos, int64_t end, int32_t index) {
    if (index < 0 || index >= PyTuple_GET_SIZE(s->consts)) return fail("bad scan program");
    PyObject *c = PyTuple_GET_ITEM(s->consts, index);
    int64_t start = *pos;
    int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(c, 3));
    int size = (int)PyLong_AsLong(PyTuple_GET_ITEM(c, 4));
    int compact = PyObject_IsTrue(PyTuple_GET_ITEM(c, 2));
    PyObject *value = ref_value(s, pos, end, compact, kind, size);
    if (value == NULL) return -1;
    PyObject *tags = current_tags(s);
    if (tags == NULL) { Py_DECREF(value); return -1; }
    PyObject *ref = PyObject_CallFunction(RefType, "OLLOOOO", PyTuple_GET_ITEM(c, 0), (long long)start,
                                          (long long)*pos, value, PyTuple_GET_ITEM(c, 1),
                                          PyTuple_GET_ITEM(c, 2), tags);
    Py_DECREF(value);
    Py_DECREF(tags);
    if (ref == NULL) return -1;
    int rc = PyList_Append(s->out, ref);
    Py_DECREF(ref);
    return rc;
}

static int fetch(const Scan *s, Py_ssize_t pc, int32_t *value) {
    if (pc < 0 || pc >= s->code_len) return fail("bad scan program");
    *value = s->code[pc];
    return 0;
}

/* Run the body at pc until its OP_END; pos moves along buf[..end). */
static int run(Scan *s, Py_ssize_t pc, int64_t *pos, int64_t end) {
    for (;;) {
        int32_t op, a, b;
        if (fetch(s, pc, &op) < 0) return -1;
        switch (op) {
        case OP_END:
            return 0;
        case OP_SKIP:
            if (fetch(s, pc + 1, &a) < 0) return -1;
            if (*pos + a > end) return fail("message is truncated");
            *pos += a;
            pc += 2;
            break;
        case OP_SKIP_ANY:
            if (fetch(s, pc + 1, &a) < 0) return -1;
            *pos += a;
            pc += 2;
            break;
        case OP_SIZED: {
            int64_t n;
            if (fetch(s, pc + 1, &a) < 0 || fetch(s, pc + 2, &b) < 0) return -1;
            if (read_length(s, pos, end, a, b, &n) < 0) return -1;
            if (n > 0) {
                if (*pos + n > end) return fail("length runs past the end of the message");
                *pos += n;
            }
            pc += 3;
            break;
        }
        case OP_REF:
            if (fetch(s, pc + 1, &a) < 0) return -1;
            if (emit(s, pos, end, a) < 0) return -1;
            pc += 2;
            break;
        case OP_ARRAY: {
            int64_t n;
            if (fetch(s, pc + 1, &a) < 0 || fetch(s, pc + 2, &b) < 0) return -1;
            if (read_length(s, pos, end, a, 1, &n) < 0) return -1;
            if (n > end - *pos) return fail("array has more elements than the message has bytes");
            for (int64_t i = 0; i < n; i++) {
                if (run(s, pc + 3, pos, end) < 0) return -1;
            }
            pc += 3 + b;
            break;
        }
        case OP_NULLABLE: {
            if (fetch(s, pc + 1, &b) < 0) return -1;
            if (*pos >= end) return fail("message is truncated");
            int8_t marker = (int8_t)s->buf[*pos];
            *pos += 1;
            if (marker >= 0 && run(s, pc + 2, pos, end) < 0) return -1;
            pc += 2 + b;
            break;
        }
        case OP_TAGS: {
            int64_t count;
            int32_t ntags;
            if (fetch(s, pc + 1, &ntags) < 0) return -1;
            if (read_uvarint(s, pos, end, &count) < 0) return -1;
            for (int64_t i = 0; i < count; i++) {
                int64_t tag, size, size_start;
                if (read_uvarint(s, pos, end, &tag) < 0) return -1;
                size_start = *pos;
                if (read_uvarint(s, pos, end, &size) < 0) return -1;
                int64_t field_end = *pos + size;
                if (field_end > end) return fail("tagged field runs past the end of the message");
                Py_ssize_t at = pc + 2;  /* the table: (tag, body_len, body...) x ntags */
                for (int32_t t = 0; t < ntags; t++) {
                    int32_t this_tag, body_len;
                    if (fetch(s, at, &this_tag) < 0 || fetch(s, at + 1, &body_len) < 0) return -1;
                    if (this_tag == tag) {
                        if (s->depth >= MAX_TAG_DEPTH) return fail("tagged fields nested too deeply");
                        s->tags[s->depth][0] = size_start;
                        s->tags[s->depth][1] = *pos;
                        s->tags[s->depth][2] = field_end;
                        s->depth++;
                        int64_t inner = *pos;
                        int rc = run(s, at + 2, &inner, field_end);
                        s->depth--;
                        if (rc < 0) return -1;
                        if (inner != field_end) return fail("tagged field is malformed");
                        break;
                    }
                    at += 2 + body_len;
                }
                *pos = field_end;
            }
            /* skip the table */
            Py_ssize_t at = pc + 2;
            for (int32_t t = 0; t < ntags; t++) {
                int32_t body_len;
                if (fetch(s, at + 1, &body_len) < 0) return -1;
                at += 2 + body_len;
            }
            pc = at;
            break;
        }
        default:
            return fail("bad scan program");
        }
    }
}

static PyObject *scan(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError, "scan(code, consts, buf, pos)");
        return NULL;
    }
    if (RefType == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tenantry.protocol._native.setup() was not called");
        return NULL;
    }
    Py_buffer code, buf;
    if (PyObject_GetBuffer(args[0], &code, PyBUF_SIMPLE) < 0) return NULL;
    if (PyObject_GetBuffer(args[2], &buf, PyBUF_SIMPLE) < 0) { PyBuffer_Release(&code); return NULL; }
    PyObject *result = NULL;
    Py_ssize_t start = PyLong_AsSsize_t(args[3]);
    if (start == -1 && PyErr_Occurred()) goto done;
    if (!PyTuple_Check(args[1])) { PyErr_SetString(PyExc_TypeError, "consts must be a tuple"); goto done; }
    Scan s = {.code = code.buf, .code_len = code.len / (Py_ssize_t)sizeof(int32_t), .consts = args[1],
              .buf = buf.buf, .view = args[2], .depth = 0};
    s.out = PyList_New(0);
    if (s.out == NULL) goto done;
    int64_t pos = start;
    if (start < 0) {
        fail("message is truncated");
    } else if (run(&s, 0, &pos, buf.len) == 0) {
        result = s.out;
        s.out = NULL;
    }
    Py_XDECREF(s.out);
done:
    PyBuffer_Release(&buf);
    PyBuffer_Release(&code);
    return result;
}


/* ---- splice: the message with some fields replaced, as slices of the original around the new bytes ----
 * Handles the common edits (strings, uuids, int16/int32 values, outside tagged fields); for anything
 * else it returns NotImplemented and the Python splice, the reference, does the work. */

typedef struct {
    Py_ssize_t begin, end;
    PyObject *bytes;
} Edit;

static void put_uvarint(char *out, Py_ssize_t *n, uint64_t value) {
    while (value >= 0x80) {
        out[(*n)++] = (char)((value & 0x7F) | 0x80);
        value >>= 7;
    }
    out[(*n)++] = (char)value;
}

/* The new bytes for one ref, or NULL with no exception set when the Python splice must do it. */
static PyObject *encode_edit(PyObject *type, int compact, PyObject *value) {
    const char *t = PyUnicode_AsUTF8(type);
    if (t == NULL) return NULL;
    char head[8];
    Py_ssize_t n = 0;
    if (strcmp(t, "string") == 0) {
        if (value == Py_None) {
            if (compact) head[n++] = 0;
            else { head[n++] = (char)0xFF; head[n++] = (char)0xFF; }
            return PyBytes_FromStringAndSize(head, n);
        }
        if (!PyUnicode_Check(value)) return NULL;
        Py_ssize_t size;
        const char *data = PyUnicode_AsUTF8AndSize(value, &size);
        if (data == NULL) { PyErr_Clear(); return NULL; }  /* surrogates: the reference raises its own error */
        if (compact) put_uvarint(head, &n, (uint64_t)size + 1);
        else {
            if (size > 32767) return NULL;
            head[n++] = (char)(size >> 8);
            head[n++] = (char)size;
        }
        PyObject *out = PyBytes_FromStringAndSize(NULL, n + size);
        if (out == NULL) return NULL;
        memcpy(PyBytes_AS_STRING(out), head, n);
        memcpy(PyBytes_AS_STRING(out) + n, data, size);
        return out;
    }
    if (strcmp(t, "uuid") == 0) {
        PyObject *raw = PyObject_GetAttrString(value, "bytes");
        if (raw == NULL) { PyErr_Clear(); return NULL; }
        if (!PyBytes_Check(raw) || PyBytes_GET_SIZE(raw) != 16) { Py_DECREF(raw); return NULL; }
        return raw;
    }
    int size = strcmp(t, "int32") == 0 ? 4 : strcmp(t, "int16") == 0 ? 2 : 0;
    if (size == 0 || !PyLong_CheckExact(value)) return NULL;
    long long v = PyLong_AsLongLong(value);
    if (v == -1 && PyErr_Occurred()) { PyErr_Clear(); return NULL; }
    if ((size == 4 && (v < INT32_MIN || v > INT32_MAX)) || (size == 2 && (v < INT16_MIN || v > INT16_MAX))) return NULL;
    for (int i = size - 1; i >= 0; i--) head[n++] = (char)(v >> (8 * i));
    return PyBytes_FromStringAndSize(head, n);
}

static PyObject *splice(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "splice(buf, changes, start)");
        return NULL;
    }
    PyObject *buf = args[0];
    Py_ssize_t start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t length = PyObject_Length(buf);
    if (length < 0) return NULL;
    PyObject *changes = PySequence_Fast(args[1], "changes must be a sequence");
    if (changes == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(changes);
    Edit *edits = PyMem_Calloc(count ? count : 1, sizeof(Edit));
    PyObject *result = NULL;
    Py_ssize_t made = 0;
    if (edits == NULL) { PyErr_NoMemory(); goto done; }
    for (; made < count; made++) {
        PyObject *change = PySequence_Fast_GET_ITEM(changes, made);
        if (!PyTuple_Check(change) || PyTuple_GET_SIZE(change) != 2) goto fallback;
        PyObject *ref = PyTuple_GET_ITEM(change, 0), *value = PyTuple_GET_ITEM(change, 1);
        PyObject *tags = PyObject_GetAttrString(ref, "tags");
        if (tags == NULL) goto done;
        int tagged = PyObject_IsTrue(tags);
        Py_DECREF(tags);
        if (tagged) goto fallback;  /* size prefixes of enclosing tagged fields change too */
        PyObject *begin = PyObject_GetAttrString(ref, "start"), *end = PyObject_GetAttrString(ref, "end");
        PyObject *type = PyObject_GetAttrString(ref, "type"), *compact = PyObject_GetAttrString(ref, "compact");
        PyObject *encoded = NULL;
        if (begin && end && type && compact && PyUnicode_Check(type)) {
            edits[made].begin = PyLong_AsSsize_t(begin);
            edits[made].end = PyLong_AsSsize_t(end);
            int is_compact = PyObject_IsTrue(compact);
            if (!PyErr_Occurred() && is_compact >= 0) encoded = encode_edit(type, is_compact, value);
        }
        Py_XDECREF(begin); Py_XDECREF(end); Py_XDECREF(type); Py_XDECREF(compact);
        if (PyErr_Occurred()) goto done;
        if (encoded == NULL) goto fallback;
        edits[made].bytes = encoded;
    }
    /* stable insertion sort by start, as the reference's list.sort */
    for (Py_ssize_t i = 1; i < count; i++) {
        Edit e = edits[i];
        Py_ssize_t j = i;
        while (j > 0 && edits[j - 1].begin > e.begin) { edits[j] = edits[j - 1]; j--; }
        edits[j] = e;
    }
    result = PyList_New(0);
    if (result == NULL) goto done;
    Py_ssize_t pos = start;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (edits[i].begin > pos) {
            PyObject *slice = PySequence_GetSlice(buf, pos, edits[i].begin);
            if (slice == NULL || PyList_Append(result, slice) < 0) { Py_XDECREF(slice); Py_CLEAR(result); goto done; }
            Py_DECREF(slice);
        }
        if (PyList_Append(result, edits[i].bytes) < 0) { Py_CLEAR(result); goto done; }
        pos = edits[i].end;
    }
    if (pos < length) {
        PyObject *slice = PySequence_GetSlice(buf, pos, length);
        if (slice == NULL || PyList_Append(result, slice) < 0) { Py_XDECREF(slice); Py_CLEAR(result); goto done; }
        Py_DECREF(slice);
    }
    goto done;
fallback:
    result = Py_NewRef(Py_NotImplemented);
done:
    if (edits != NULL) {
        for (Py_ssize_t i = 0; i < made && i < count; i++) Py_XDECREF(edits[i].bytes);
        PyMem_Free(edits);
    }
    Py_DECREF(changes);
    return result;
}



/* A flexible header's tagged fields, skipped as headers.skip_tagged_fields does; -1 with DecodeError set. */
static int skip_header_tags(const uint8_t *b, int64_t len, int64_t *pos) {
    Scan s = {.buf = b};
    int64_t count, value;
    if (read_uvarint(&s, pos, len, &count) < 0) goto bad;
    for (int64_t i = 0; i < count; i++) {
        if (read_uvarint(&s, pos, len, &value) < 0 || read_uvarint(&s, pos, len, &value) < 0) goto bad;
        *pos += value;
    }
    if (*pos > len) {
        PyErr_SetString(DecodeError, "tagged fields run past the end of the header");
        return -1;
    }
    return 0;
bad:
    PyErr_SetString(DecodeError, "malformed header: truncated or bad tagged fields");
    return -1;
}

/* (api key, api version, correlation id) of any request, known or not. */
static PyObject *peek_request_header(PyObject *self, PyObject *arg) {
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *b = view.buf;
    PyObject *result = NULL;
    if (view.len < 8) {
        PyErr_Format(DecodeError, "request of %zd bytes is shorter than a request header", view.len);
    } else {
        int32_t corr = (int32_t)(((uint32_t)b[4] << 24) | ((uint32_t)b[5] << 16) | ((uint32_t)b[6] << 8) | b[7]);
        result = Py_BuildValue("iii", (int16_t)((b[0] << 8) | b[1]), (int16_t)((b[2] << 8) | b[3]), (int)corr);
    }
    PyBuffer_Release(&view);
    return result;
}

/* Where a response's body starts: after the correlation id, and the tagged fields of a flexible header
 * (ApiVersions answers always use header v0). NotImplemented for an API key the table does not hold. */
static PyObject *response_body_start(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyDict_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError, "response_body_start(frame, api_key, api_version, first_flexible)");
        return NULL;
    }
    long api_key = PyLong_AsLong(args[1]), api_version = PyLong_AsLong(args[2]);
    if ((api_key == -1 || api_version == -1) && PyErr_Occurred()) return NULL;
    PyObject *first = PyDict_GetItemWithError(args[3], args[1]);  /* borrowed */
    if (first == NULL) {
        if (PyErr_Occurred()) return NULL;
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (api_key == 18 || first == Py_None) return PyLong_FromLong(4);  /* 18: ApiVersions */
    long from = PyLong_AsLong(first);
    if (from == -1 && PyErr_Occurred()) return NULL;
    if (api_version < from) return PyLong_FromLong(4);
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    int64_t pos = 4;
    int rc = skip_header_tags(view.buf, view.len, &pos);
    PyBuffer_Release(&view);
    return rc < 0 ? NULL : PyLong_FromLongLong(pos);
}

/* ---- request headers: api key, version, correlation id, client id and where the body starts ----
 * The same result and the same refusals as tenantry.protocol.headers.parse_request_header (the
 * reference); an API key the table does not hold is left to it (it raises UnknownApi). */
static PyObject *parse_request_header(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2 || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "parse_request_header(frame, first_flexible: dict)");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *b = view.buf;
    int64_t len = view.len, pos;
    PyObject *result = NULL, *client_id = NULL;
    if (len < 8) {
        PyErr_Format(DecodeError, "request of %zd bytes is shorter than a request header", view.len);
        goto done;
    }
    int api_key = (int16_t)((b[0] << 8) | b[1]), api_version = (int16_t)((b[2] << 8) | b[3]);
    int32_t corr = (int32_t)(((uint32_t)b[4] << 24) | ((uint32_t)b[5] << 16) | ((uint32_t)b[6] << 8) | b[7]);
    PyObject *key = PyLong_FromLong(api_key);
    if (key == NULL) goto done;
    PyObject *first = PyDict_GetItemWithError(args[1], key);  /* borrowed */
    Py_DECREF(key);
    if (first == NULL) {
        if (!PyErr_Occurred()) result = Py_NewRef(Py_NotImplemented);
        goto done;
    }
    if (len < 10) { PyErr_SetString(DecodeError, "malformed request header: truncated"); goto done; }
    int n = (int16_t)((b[8] << 8) | b[9]);
    pos = 10;
    if (n >= 0) {
        if (pos + n > len) { PyErr_SetString(DecodeError, "client id runs past the end of the request"); goto done; }
        client_id = PyUnicode_DecodeUTF8((const char *)b + pos, n, "replace");
        if (client_id == NULL) goto done;
        pos += n;
    } else {
        client_id = Py_NewRef(Py_None);
    }
    if (first != Py_None) {
        long from = PyLong_AsLong(first);
        if (from == -1 && PyErr_Occurred()) goto done;
        if (api_version >= from && skip_header_tags(b, len, &pos) < 0) goto done;
    }
    result = Py_BuildValue("iiiOL", api_key, api_version, (int)corr, client_id, (long long)pos);
done:
    Py_XDECREF(client_id);
    PyBuffer_Release(&view);
    return result;
}

static PyObject *setup(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 4 || !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "setup(Ref, TagSpan, uuid.UUID, uuid.SafeUUID.unknown)");
        return NULL;
    }
    PyObject **slots[] = {&RefType, &TagSpanType, &UuidType, &UuidUnknownSafety};
    for (int i = 0; i < 4; i++) {
        Py_INCREF(args[i]);
        Py_XSETREF(*slots[i], args[i]);
    }
    if (EmptyTuple == NULL && (EmptyTuple = PyTuple_New(0)) == NULL) return NULL;
    if (IntName == NULL && (IntName = PyUnicode_InternFromString("int")) == NULL) return NULL;
    if (IsSafeName == NULL && (IsSafeName = PyUnicode_InternFromString("is_safe")) == NULL) return NULL;
    Py_RETURN_NONE;
}

/* A bytearray whose contents are not zeroed: the framer fills every byte it hands out before it does,
 * and zeroing a 64 KiB scratch buffer or a multi-megabyte frame's buffer costs as much as reading it. */
static PyObject *uninitialized_bytearray(PyObject *self, PyObject *arg) {
    Py_ssize_t size = PyLong_AsSsize_t(arg);
    if (size == -1 && PyErr_Occurred()) return NULL;
    if (size < 0) {
        PyErr_SetString(PyExc_ValueError, "negative size");
        return NULL;
    }
    return PyByteArray_FromStringAndSize(NULL, size);
}

/* Record batches (record encryption only): the parts of every record of a decompressed v2 records
 * section, as tenantry.protocol.batches.record_spans_in_python finds them, which stays the reference. */

/* A zigzag varint of up to 10 bytes at *pos (records' lengths, deltas and counts); -1 with DecodeError set. */
static int read_varlong(const uint8_t *b, int64_t *pos, int64_t end, int64_t *value) {
    uint64_t raw = 0;
    int shift = 0;
    for (;;) {
        if (*pos >= end) return fail("the batch holds fewer records than it counts");
        uint8_t byte = b[(*pos)++];
        raw |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) break;
        shift += 7;
        if (shift > 63) return fail("a varint longer than 10 bytes");
    }
    *value = (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
    return 0;
}

/* A key, value or header part: (start, end) or (-1, -1) for null; -1 with DecodeError set. */
static int read_part(const uint8_t *b, int64_t *pos, int64_t limit, int64_t *start, int64_t *end) {
    int64_t length;
    if (read_varlong(b, pos, limit, &length) < 0) return -1;
    if (length < 0) {
        *start = *end = -1;
        return 0;
    }
    if (length > limit - *pos) return fail("a record field overruns its record");
    *start = *pos;
    *pos += length;
    *end = *pos;
    return 0;
}

/* One record's parts, as record_spans reports them. */
typedef struct {
    int64_t start, fields, key_start, key_end, value_start, value_end, headers, end;
} Spans;

/* Every record of a records section: *out (PyMem) holds `count` Spans; -1 with DecodeError set. */
static int parse_spans(const uint8_t *b, int64_t end, long long count, Spans **out) {
    *out = NULL;
    if (count < 0) return fail("a negative record count");
    if (count > end) return fail("the batch holds fewer records than it counts");  /* a record is >= 1 byte */
    Spans *spans = PyMem_Malloc(sizeof(Spans) * (size_t)(count ? count : 1));
    if (spans == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int64_t pos = 0;
    for (long long i = 0; i < count; i++) {
        Spans *r = &spans[i];
        int64_t length, value, header_count;
        if (read_varlong(b, &pos, end, &length) < 0) goto bad;
        if (length < 0 || length > end - pos) {
            fail("a record's length overruns its batch");
            goto bad;
        }
        r->start = pos;
        r->end = pos + length;
        int64_t at = pos + 1;  /* after the attributes byte: timestamp delta, offset delta */
        if (read_varlong(b, &at, end, &value) < 0 || read_varlong(b, &at, end, &value) < 0) goto bad;
        r->fields = at;
        if (read_part(b, &at, r->end, &r->key_start, &r->key_end) < 0) goto bad;
        if (read_part(b, &at, r->end, &r->value_start, &r->value_end) < 0) goto bad;
        r->headers = at;
        if (read_varlong(b, &at, end, &header_count) < 0) goto bad;
        if (header_count < 0) {
            fail("a negative header count");
            goto bad;
        }
        for (int64_t h = 0; h < header_count; h++) {
            int64_t s0, e0;
            if (read_part(b, &at, r->end, &s0, &e0) < 0) goto bad;
            if (s0 < 0) {
                fail("a header without a name");
                goto bad;
            }
            if (read_part(b, &at, r->end, &s0, &e0) < 0) goto bad;
        }
        if (at != r->end) {
            fail("a record's fields do not end where its length says");
            goto bad;
        }
        pos = r->end;
    }
    if (pos != end) {
        fail("the batch holds more bytes than its records");
        goto bad;
    }
    *out = spans;
    return 0;
bad:
    PyMem_Free(spans);
    return -1;
}

static PyObject *record_spans(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "record_spans(buf, count)");
        return NULL;
    }
    long long count = PyLong_AsLongLong(args[1]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    Spans *spans;
    PyObject *out = NULL;
    if (parse_spans(view.buf, view.len, count, &spans) == 0) {
        out = PyList_New((Py_ssize_t)count);
        for (long long i = 0; out != NULL && i < count; i++) {
            Spans *r = &spans[i];
            PyObject *t = Py_BuildValue("(LLLLLLLL)", (long long)r->start, (long long)r->fields,
                                        (long long)r->key_start, (long long)r->key_end, (long long)r->value_start,
                                        (long long)r->value_end, (long long)r->headers, (long long)r->end);
            if (t == NULL) Py_CLEAR(out);
            else PyList_SET_ITEM(out, (Py_ssize_t)i, t);
        }
        PyMem_Free(spans);
    }
    PyBuffer_Release(&view);
    return out;
}

/* Zigzag varint writing, as the records use it. */
static int varint_size(int64_t value) {
    uint64_t raw = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    int n = 1;
    while (raw >= 0x80) {
        raw >>= 7;
        n++;
    }
    return n;
}

static uint8_t *put_varint(uint8_t *out, int64_t value) {
    uint64_t raw = ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
    while (raw >= 0x80) {
        *out++ = (uint8_t)((raw & 0x7F) | 0x80);
        raw >>= 7;
    }
    *out++ = (uint8_t)raw;
    return out;
}

/* A bytes object of the callable's result, checked to be `size` bytes (-1: any); NULL with an error set. */
static PyObject *called_bytes(PyObject *result, Py_ssize_t size, const char *what) {
    if (result == NULL) return NULL;
    if (!PyBytes_Check(result) || (size >= 0 && PyBytes_GET_SIZE(result) != size)) {
        PyErr_Format(PyExc_ValueError, "%s returned the wrong type or size", what);
        Py_DECREF(result);
        return NULL;
    }
    return result;
}

#define NONCE_BYTES 12
#define TAG_BYTES 16
#define TOKEN_BYTES 32

/* seal_section(data, count, encrypt, token, head, salt, counter, aad, marker) -> bytes: see
 * tenantry.protocol.sealing.seal_section_in_python, the reference, for what each record becomes. */
static PyObject *seal_section(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 9 || !PyBytes_Check(args[4]) || !PyBytes_Check(args[5]) || PyBytes_GET_SIZE(args[5]) != 4 ||
        !PyBytes_Check(args[7]) || !PyBytes_Check(args[8])) {
        PyErr_SetString(PyExc_TypeError, "seal_section(data, count, encrypt, token, head: bytes, salt: 4 bytes, "
                                         "counter, aad: bytes, marker: bytes)");
        return NULL;
    }
    long long count = PyLong_AsLongLong(args[1]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    unsigned long long counter = PyLong_AsUnsignedLongLong(args[6]);
    if (counter == (unsigned long long)-1 && PyErr_Occurred()) return NULL;
    PyObject *encrypt = args[2], *token = args[3], *head = args[4], *aad = args[7], *marker = args[8];
    const char *salt = PyBytes_AS_STRING(args[5]);
    Py_ssize_t head_len = PyBytes_GET_SIZE(head), marker_len = PyBytes_GET_SIZE(marker);
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *b = view.buf;
    Spans *spans = NULL;
    PyObject *out = NULL, *data = NULL;
    if (parse_spans(b, view.len, count, &spans) < 0) goto done;
    /* The size of the result, exactly: a sealed value is its plaintext and the tag, after head and nonce. */
    int64_t total = 0;
    for (long long i = 0; i < count; i++) {
        Spans *r = &spans[i];
        int64_t key = r->key_start < 0 ? 1 : 1 + TOKEN_BYTES;
        int64_t value = head_len + NONCE_BYTES + (r->end - r->fields) + TAG_BYTES;
        int64_t length = (r->fields - r->start) + key + varint_size(value) + value + marker_len;
        total += varint_size(length) + length;
    }
    data = PyMemoryView_FromObject(args[0]);  /* sliced for the callables: no copies of the plaintext */
    if (data == NULL || (out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total)) == NULL) goto done;
    uint8_t *w = (uint8_t *)PyBytes_AS_STRING(out);
    for (long long i = 0; i < count; i++, counter++) {
        Spans *r = &spans[i];
        uint8_t nonce_bytes[NONCE_BYTES];
        memcpy(nonce_bytes, salt, 4);
        for (int k = 0; k < 8; k++) nonce_bytes[4 + k] = (uint8_t)(counter >> (56 - 8 * k));
        PyObject *nonce = PyBytes_FromStringAndSize((const char *)nonce_bytes, NONCE_BYTES);
        PyObject *plain = nonce == NULL ? NULL : PySequence_GetSlice(data, r->fields, r->end);
        PyObject *sealed = plain == NULL ? NULL : called_bytes(
            PyObject_CallFunctionObjArgs(encrypt, nonce, plain, aad, NULL), r->end - r->fields + TAG_BYTES,
            "encrypt");
        Py_XDECREF(plain);
        PyObject *tok = NULL;
        if (sealed != NULL && r->key_start >= 0) {
            PyObject *key = PySequence_GetSlice(data, r->key_start, r->key_end);
            tok = key == NULL ? NULL : called_bytes(PyObject_CallOneArg(token, key), TOKEN_BYTES, "token");
            Py_XDECREF(key);
            if (tok == NULL) Py_CLEAR(sealed);
        }
        if (sealed == NULL) {
            Py_XDECREF(nonce);
            Py_CLEAR(out);
            goto done;
        }
        int64_t key_size = tok == NULL ? 1 : 1 + TOKEN_BYTES;
        int64_t value = head_len + NONCE_BYTES + PyBytes_GET_SIZE(sealed);
        int64_t length = (r->fields - r->start) + key_size + varint_size(value) + value + marker_len;
        w = put_varint(w, length);
        memcpy(w, b + r->start, (size_t)(r->fields - r->start));
        w += r->fields - r->start;
        if (tok == NULL) {
            w = put_varint(w, -1);
        } else {
            w = put_varint(w, TOKEN_BYTES);
            memcpy(w, PyBytes_AS_STRING(tok), TOKEN_BYTES);
            w += TOKEN_BYTES;
        }
        w = put_varint(w, value);
        memcpy(w, PyBytes_AS_STRING(head), (size_t)head_len);
        w += head_len;
        memcpy(w, nonce_bytes, NONCE_BYTES);
        w += NONCE_BYTES;
        memcpy(w, PyBytes_AS_STRING(sealed), (size_t)PyBytes_GET_SIZE(sealed));
        w += PyBytes_GET_SIZE(sealed);
        memcpy(w, PyBytes_AS_STRING(marker), (size_t)marker_len);
        w += marker_len;
        Py_DECREF(nonce);
        Py_DECREF(sealed);
        Py_XDECREF(tok);
    }
done:
    PyMem_Free(spans);
    Py_XDECREF(data);
    PyBuffer_Release(&view);
    return out;
}

/* open_section(data, count, key_for, marker, magic) -> bytes, or None if no record was sealed: see
 * tenantry.protocol.sealing.open_section_in_python, the reference. An opened record is never longer than
 * its sealed form, so the result fits in len(data) bytes. */
static PyObject *open_section(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 5 || !PyBytes_Check(args[3]) || !PyBytes_Check(args[4])) {
        PyErr_SetString(PyExc_TypeError, "open_section(data, count, key_for, marker: bytes, magic: bytes)");
        return NULL;
    }
    long long count = PyLong_AsLongLong(args[1]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    PyObject *key_for = args[2];
    const char *marker = PyBytes_AS_STRING(args[3]), *magic = PyBytes_AS_STRING(args[4]);
    Py_ssize_t marker_len = PyBytes_GET_SIZE(args[3]), magic_len = PyBytes_GET_SIZE(args[4]);
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    const uint8_t *b = view.buf;
    Spans *spans = NULL;
    PyObject *out = NULL, *data = NULL, *head = NULL, *decrypt = NULL, *aad = NULL;
    Py_ssize_t head_len = 0;
    long long opened = 0;
    if (parse_spans(b, view.len, count, &spans) < 0) goto done;
    data = PyMemoryView_FromObject(args[0]);
    if (data == NULL || (out = PyBytes_FromStringAndSize(NULL, view.len)) == NULL) goto done;
    uint8_t *w = (uint8_t *)PyBytes_AS_STRING(out);
    for (long long i = 0; i < count; i++) {
        Spans *r = &spans[i];
        int marked = r->end - r->headers == marker_len && memcmp(b + r->headers, marker, (size_t)marker_len) == 0;
        int magical = r->value_start >= 0 && r->value_end - r->value_start >= magic_len &&
                      memcmp(b + r->value_start, magic, (size_t)magic_len) == 0;
        if (!marked && !magical) {  /* plaintext, written before encryption */
            w = put_varint(w, r->end - r->start);
            memcpy(w, b + r->start, (size_t)(r->end - r->start));
            w += r->end - r->start;
            continue;
        }
        if (r->value_start < 0) {
            fail("a sealed record has no value");
            goto bad;
        }
        if (head == NULL || r->value_end - r->value_start < head_len ||
            memcmp(b + r->value_start, PyBytes_AS_STRING(head), (size_t)head_len) != 0) {
            PyObject *envelope = PySequence_GetSlice(data, r->value_start, r->value_end);
            PyObject *found = envelope == NULL ? NULL : PyObject_CallOneArg(key_for, envelope);
            Py_XDECREF(envelope);
            if (found == NULL) goto bad;
            Py_ssize_t length;
            if (!PyTuple_Check(found) || PyTuple_GET_SIZE(found) != 3 ||
                ((length = PyLong_AsSsize_t(PyTuple_GET_ITEM(found, 0))) == -1 && PyErr_Occurred())) {
                if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "key_for returned the wrong shape");
                Py_DECREF(found);
                goto bad;
            }
            if (length < 0 || length > r->value_end - r->value_start) {
                Py_DECREF(found);
                PyErr_SetString(PyExc_ValueError, "key_for returned a head longer than the envelope");
                goto bad;
            }
            Py_XSETREF(head, PyBytes_FromStringAndSize((const char *)b + r->value_start, length));
            Py_XSETREF(decrypt, Py_NewRef(PyTuple_GET_ITEM(found, 1)));
            Py_XSETREF(aad, Py_NewRef(PyTuple_GET_ITEM(found, 2)));
            Py_DECREF(found);
            if (head == NULL) goto bad;
            head_len = length;
        }
        if (r->value_end - r->value_start < head_len + NONCE_BYTES + TAG_BYTES) {
            fail("a sealed record's value is shorter than an envelope");
            goto bad;
        }
        int64_t at = r->value_start + head_len;
        PyObject *nonce = PySequence_GetSlice(data, at, at + NONCE_BYTES);
        PyObject *sealed = nonce == NULL ? NULL : PySequence_GetSlice(data, at + NONCE_BYTES, r->value_end);
        PyObject *parcel = sealed == NULL ? NULL : called_bytes(
            PyObject_CallFunctionObjArgs(decrypt, nonce, sealed, aad, NULL),
            r->value_end - at - NONCE_BYTES - TAG_BYTES, "decrypt");
        Py_XDECREF(nonce);
        Py_XDECREF(sealed);
        if (parcel == NULL) goto bad;
        Py_ssize_t size = PyBytes_GET_SIZE(parcel);
        w = put_varint(w, (r->fields - r->start) + size);
        memcpy(w, b + r->start, (size_t)(r->fields - r->start));
        w += r->fields - r->start;
        memcpy(w, PyBytes_AS_STRING(parcel), (size_t)size);
        w += size;
        Py_DECREF(parcel);
        opened++;
    }
    if (opened == 0) {
        Py_SETREF(out, Py_NewRef(Py_None));
        goto done;
    }
    if (_PyBytes_Resize(&out, (Py_ssize_t)(w - (uint8_t *)PyBytes_AS_STRING(out))) < 0) goto done;
    goto done;
bad:
    Py_CLEAR(out);
done:
    PyMem_Free(spans);
    Py_XDECREF(data);
    Py_XDECREF(head);
    Py_XDECREF(decrypt);
    Py_XDECREF(aad);
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"peek_request_header", peek_request_header, METH_O,
     "peek_request_header(frame) -> (api_key, api_version, correlation_id)."},
    {"response_body_start", (PyCFunction)(void (*)(void))response_body_start, METH_FASTCALL,
     "response_body_start(frame, api_key, api_version, first_flexible) -> int, or NotImplemented."},
    {"parse_request_header", (PyCFunction)(void (*)(void))parse_request_header, METH_FASTCALL,
     "parse_request_header(frame, first_flexible) -> (key, version, corr, client_id, body_offset), or NotImplemented."},
    {"splice", (PyCFunction)(void (*)(void))splice, METH_FASTCALL,
     "splice(buf, changes, start) -> list of chunks, or NotImplemented for edits the Python splice must make."},
    {"uninitialized_bytearray", uninitialized_bytearray, METH_O,
     "uninitialized_bytearray(size) -> bytearray of size bytes, not zeroed."},
    {"scan", (PyCFunction)(void (*)(void))scan, METH_FASTCALL,
     "scan(code, consts, buf, pos) -> list of Ref: run a compiled scan program over buf[pos:]."},
    {"seal_section", (PyCFunction)(void (*)(void))seal_section, METH_FASTCALL,
     "seal_section(data, count, encrypt, token, head, salt, counter, aad, marker) -> bytes."},
    {"open_section", (PyCFunction)(void (*)(void))open_section, METH_FASTCALL,
     "open_section(data, count, key_for, marker, magic) -> bytes, or None if no record was sealed."},
    {"record_spans", (PyCFunction)(void (*)(void))record_spans, METH_FASTCALL,
     "record_spans(buf, count) -> [(start, fields, key_start, key_end, value_start, value_end, headers, end)]."},
    {"setup", (PyCFunction)(void (*)(void))setup, METH_FASTCALL,
     "setup(Ref, TagSpan, uuid.UUID, uuid.SafeUUID.unknown): the types the scanner builds."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "tenantry.protocol._native",
                                    "The codec's hot loops in C; see tenantry.protocol.scan_program.", -1, methods,
                                    NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__native(void) {
    PyObject *errors = PyImport_ImportModule("tenantry.protocol.errors");
    if (errors == NULL) return NULL;
    DecodeError = PyObject_GetAttrString(errors, "DecodeError");
    Py_DECREF(errors);
    if (DecodeError == NULL) return NULL;
    return PyModule_Create(&module);
}
