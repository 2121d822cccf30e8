/* _dh.c: the CPython extension module over libdh (the dh package's core). See LICENSE.
 *
 * Blocking calls release the GIL and wait in slices of SLICE_NS, running
 * PyErr_CheckSignals (GIL held) between slices, so Ctrl-C raises
 * KeyboardInterrupt promptly even when the signal lands on another thread.
 * A signal delivered to the waiting thread interrupts the futex at once:
 * CPython installs its handlers without SA_RESTART.
 *
 * Memory handed out as memoryviews (a message's data, a reserved slot)
 * points into the mapping or the reader's private copy.  A handle whose
 * memory is still exported is never unmapped under the views: close()
 * then detaches what it safely can and defers the rest to the release of
 * the last view (see reader_finish / writer_finish).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <signal.h>

#include "dh.h"

#define SLICE_NS 50000000LL     /* longest uninterruptible wait: 50 ms */
#define BIG_COPY (32u << 10)    /* writes at least this large copy without the GIL */
#define ERR_PY INT32_MIN        /* "a Python exception is set" */

PyMODINIT_FUNC PyInit__dh(void);

static PyObject *error_map;     /* code (positive int) -> exception class; set by dh/__init__.py */
static PyObject *error_base;    /* dh.Error */

/* ---- errors ---------------------------------------------------------------- */

/* Raise the exception for a -DH_E* code about channel (may be NULL): the
 * message names the channel; attributes code, channel, filename. */
static PyObject *
raise_dh(int rc, const char *channel)
{
	PyObject *cls = NULL, *key, *exc, *v;
	int code = -rc;

	if (rc == ERR_PY)
		return NULL;
	if (error_map != NULL && (key = PyLong_FromLong(code)) != NULL) {
		cls = PyDict_GetItemWithError(error_map, key);
		Py_DECREF(key);
		if (cls == NULL && PyErr_Occurred())
			return NULL;
	}
	if (cls == NULL)
		cls = error_base != NULL ? error_base : PyExc_OSError;
	if (channel != NULL)
		exc = PyObject_CallFunction(cls, "N", PyUnicode_FromFormat("%s: %s", channel, dh_strerror(rc)));
	else
		exc = PyObject_CallFunction(cls, "s", dh_strerror(rc));
	if (exc == NULL)
		return NULL;
	if ((v = PyLong_FromLong(code)) != NULL) {
		PyObject_SetAttrString(exc, "code", v);
		Py_DECREF(v);
	}
	if (channel != NULL && (v = PyUnicode_FromString(channel)) != NULL) {
		PyObject_SetAttrString(exc, "channel", v);
		Py_DECREF(v);
	}
	PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
	Py_DECREF(exc);
	return NULL;
}

/* Raise the exception for libdh code rc (negative errno or -DH_E*). */
static PyObject *
raise_rc(int rc, const char *channel)
{
	if (rc == ERR_PY)
		return NULL;
	if (-rc >= DH_EBASE)
		return raise_dh(rc, channel);
	{
		PyObject *cls = NULL, *key, *exc, *v;

		if (error_map != NULL && (key = PyLong_FromLong(-rc)) != NULL) {
			cls = PyDict_GetItemWithError(error_map, key);
			Py_DECREF(key);
			if (cls == NULL && PyErr_Occurred())
				return NULL;
		}
		if (cls == NULL)
			cls = error_base != NULL ? error_base : PyExc_OSError;
		/* "Connection timed out" would mislead: nothing here connects */
		const char *msg = rc == -ETIMEDOUT ? "timed out" : strerror(-rc);

		if (channel != NULL)
			exc = PyObject_CallFunction(cls, "iss", -rc, msg, channel);
		else
			exc = PyObject_CallFunction(cls, "is", -rc, msg);
		if (exc == NULL)
			return NULL;
		if ((v = PyLong_FromLong(-rc)) != NULL) {
			PyObject_SetAttrString(exc, "code", v);
			Py_DECREF(v);
		}
		if (channel != NULL && (v = PyUnicode_FromString(channel)) != NULL) {
			PyObject_SetAttrString(exc, "channel", v);
			Py_DECREF(v);
		}
		PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
		Py_DECREF(exc);
	}
	return NULL;
}

/* ---- argument helpers ---------------------------------------------------- */

static int64_t
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* timeout in seconds (None: forever) -> ns (< 0 forever). */
static int
timeout_arg(PyObject *o, int64_t *out)
{
	double d;

	if (o == NULL || o == Py_None) {
		*out = -1;
		return 0;
	}
	d = PyFloat_AsDouble(o);
	if (d == -1.0 && PyErr_Occurred())
		return -1;
	if (!(d >= 0)) {
		PyErr_SetString(PyExc_ValueError, "timeout must be None or a number of seconds >= 0");
		return -1;
	}
	if (d > 9.2e9) {
		*out = -1;
		return 0;
	}
	*out = (int64_t)(d * 1e9);
	return 0;
}

/* key: None, 32 bytes (any buffer), or a key file path (str/PathLike). */
static int
key_arg(PyObject *o, uint8_t key[DH_KEY_BYTES], int *has, const char *channel)
{
	*has = 0;
	if (o == NULL || o == Py_None)
		return 0;
	if (PyUnicode_Check(o) || PyObject_HasAttrString(o, "__fspath__")) {
		PyObject *path = NULL;
		int rc;

		if (!PyUnicode_FSConverter(o, &path))
			return -1;
		rc = dh_key_load(PyBytes_AS_STRING(path), key);
		if (rc < 0) {
			raise_rc(rc, PyBytes_AS_STRING(path));
			Py_DECREF(path);
			return -1;
		}
		Py_DECREF(path);
		*has = 1;
		return 0;
	}
	{
		Py_buffer b;

		if (PyObject_GetBuffer(o, &b, PyBUF_SIMPLE) < 0)
			return -1;
		if (b.len != DH_KEY_BYTES) {
			PyBuffer_Release(&b);
			PyErr_Format(PyExc_ValueError, "%s: a key is %d bytes, got %zd", channel ? channel : "key",
				     DH_KEY_BYTES, b.len);
			return -1;
		}
		memcpy(key, b.buf, DH_KEY_BYTES);
		PyBuffer_Release(&b);
	}
	*has = 1;
	return 0;
}

static int
name_arg(const char *name)
{
	int rc = dh_name_check(name);

	if (rc < 0) {
		PyErr_Format(PyExc_ValueError,
			     "invalid channel name %R (A-Z a-z 0-9 . _ -, 1..%d bytes, no leading dot)",
			     PyUnicode_FromString(name), DH_NAME_MAX);
		return -1;
	}
	return 0;
}

/* The schema of an open channel: (canonical str or None, record size). */
static int
channel_schema(struct dh_block *b, PyObject **schema, uint32_t *size)
{
	char buf[DH_SCHEMA_MAX];
	int rc = dh_block_schema(b, buf, sizeof buf, NULL);

	*schema = NULL;
	*size = 0;
	if (rc < 0)
		return rc;
	*size = (uint32_t)rc;
	if (rc > 0 && (*schema = PyUnicode_FromString(buf)) == NULL)
		return ERR_PY;
	return 0;
}

/* ---- Reader and Message ---------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	struct dh_reader *r;
	char *name;
	int64_t timeout_ns;
	uint64_t gen;             /* bumped whenever earlier message data becomes invalid */
	Py_ssize_t exports;       /* buffers of this reader's messages still held */
	int closed;               /* close() called */
	int busy;                 /* a thread is inside a libdh call (GIL released) */
	int skip_bad;
	pid_t pid;
	uint32_t record_size;
	PyObject *schema;
	PyObject *label;
	uint64_t checksum_failures;
	PyObject *weakrefs;
} ReaderObject;

typedef struct {
	PyObject_HEAD
	ReaderObject *reader;
	const void *data;
	size_t len;
	uint64_t seq, time_ns, lost;
	uint64_t gen;
} MessageObject;

static PyTypeObject ReaderType, MessageType;

/* Detach for good: only once no view of our memory is left. */
static void
reader_finish(ReaderObject *self)
{
	if (self->r != NULL && self->exports == 0) {
		struct dh_reader *r = self->r;

		self->r = NULL;
		/* a handle inherited through fork() is the parent's: leave it */
		if (self->pid == getpid())
			dh_reader_close(r);
	}
}

static int
reader_usable(ReaderObject *self)
{
	if (self->closed || self->r == NULL) {
		PyErr_SetString(PyExc_ValueError, "I/O operation on a closed Reader");
		return -1;
	}
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"Reader is in use by another thread (one thread per handle: open one Reader each)");
		return -1;
	}
	return 0;
}

/*
 * Next message, waiting up to timeout_ns: 0, DH_END, or a negative code
 * (ERR_PY when a signal handler raised).  First without releasing the
 * GIL (the common case on a busy stream costs no thread switch).
 */
static int
reader_next_wait(ReaderObject *self, struct dh_msg *m, int64_t timeout_ns)
{
	int64_t deadline = 0;
	int rc;

	self->gen++;
	rc = dh_reader_next(self->r, m, 0);
	if (rc != -EAGAIN || timeout_ns == 0)
		return rc;
	if (timeout_ns > 0)
		deadline = now_mono() + timeout_ns;
	for (;;) {
		int64_t slice = SLICE_NS;

		if (timeout_ns > 0) {
			int64_t rem = deadline - now_mono();
			if (rem <= 0)
				return -ETIMEDOUT;
			if (rem < slice)
				slice = rem;
		}
		self->busy = 1;
		Py_BEGIN_ALLOW_THREADS
		rc = dh_reader_next(self->r, m, slice);
		Py_END_ALLOW_THREADS
		self->busy = 0;
		if (rc != -ETIMEDOUT && rc != -EINTR)
			return rc;
		if (PyErr_CheckSignals() < 0)
			return ERR_PY;
	}
}

static PyObject *
message_new(ReaderObject *r, const struct dh_msg *m)
{
	MessageObject *o = PyObject_New(MessageObject, &MessageType);

	if (o == NULL)
		return NULL;
	Py_INCREF(r);
	o->reader = r;
	o->data = m->data;
	o->len = m->len;
	o->seq = m->seq;
	o->time_ns = m->time_ns;
	o->lost = m->lost;
	o->gen = r->gen;
	return (PyObject *)o;
}

/* One message: a Message, None at end-of-stream, or NULL with an exception. */
static PyObject *
reader_read1(ReaderObject *self, int64_t timeout_ns)
{
	struct dh_msg m;
	int rc;

	if (reader_usable(self) < 0)
		return NULL;
	for (;;) {
		rc = reader_next_wait(self, &m, timeout_ns);
		if (rc == 0)
			return message_new(self, &m);
		if (rc == DH_END)
			Py_RETURN_NONE;
		if (rc == -DH_ECHECKSUM) {
			self->checksum_failures++;
			if (self->skip_bad)
				continue;
			raise_dh(rc, self->name);
			{
				PyObject *t, *v, *tb, *s;
				PyErr_Fetch(&t, &v, &tb);
				PyErr_NormalizeException(&t, &v, &tb);
				if (v != NULL && (s = PyLong_FromUnsignedLongLong(m.seq)) != NULL) {
					PyObject_SetAttrString(v, "seq", s);
					Py_DECREF(s);
				}
				PyErr_Restore(t, v, tb);
			}
			return NULL;
		}
		if (rc == -EAGAIN)
			rc = -ETIMEDOUT;
		return raise_rc(rc, self->name);
	}
}

/* by name: "held" is what the channel holds now, also of a stream that
 * ended (by default a reader arriving after end-of-stream waits for the
 * next stream, like the reader of a FIFO) */
static const struct {
	const char *name;
	enum dh_start start;
} start_names[] = {
	{ "default", DH_START_DEFAULT }, { "oldest", DH_START_OLDEST }, { "latest", DH_START_LATEST },
	{ "now", DH_START_NOW },         { "held", DH_START_HELD },     { NULL, DH_START_DEFAULT },
};

static int
reader_init(ReaderObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", "start", "timeout", "follow", "label", "key", "schema", "skip_bad", NULL };
	const char *name, *label = NULL, *schema = NULL;
	PyObject *start = NULL, *timeout = NULL, *key = NULL;
	int follow = 0, skip_bad = 0, has_key = 0, rc;
	uint8_t k[DH_KEY_BYTES];
	struct dh_reader_opts ro;
	struct dh_reader *r;

	if (self->r != NULL || self->name != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "Reader already initialised");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$OOpzOzp:Reader", kwlist, &name, &start, &timeout, &follow,
					 &label, &key, &schema, &skip_bad))
		return -1;
	if (name_arg(name) < 0 || timeout_arg(timeout, &self->timeout_ns) < 0)
		return -1;
	memset(&ro, 0, sizeof ro);
	ro.label = label;
	ro.follow = follow;
	ro.schema = schema;
	if (start == NULL || start == Py_None) {
		ro.start = DH_START_DEFAULT;
	} else if (PyLong_Check(start)) {
		unsigned long long s = PyLong_AsUnsignedLongLong(start);
		if (s == (unsigned long long)-1 && PyErr_Occurred())
			return -1;
		ro.start = DH_START_SEQ;
		ro.start_seq = s;
	} else {
		const char *s = PyUnicode_Check(start) ? PyUnicode_AsUTF8(start) : NULL;
		int i;

		for (i = 0; s != NULL && start_names[i].name != NULL && strcmp(s, start_names[i].name) != 0; i++)
			;
		if (s == NULL || start_names[i].name == NULL) {
			PyErr_Format(PyExc_ValueError,
				     "start must be 'default', 'oldest', 'latest', 'now', 'held' or a sequence number, not %R",
				     start);
			return -1;
		}
		ro.start = start_names[i].start;
	}
	if (key_arg(key, k, &has_key, name) < 0)
		return -1;
	if (has_key)
		ro.key = k;
	self->skip_bad = skip_bad;
	/* opening may wait (bounded) for a creator to publish the header */
	Py_BEGIN_ALLOW_THREADS
	rc = dh_reader_open(name, &ro, &r);
	Py_END_ALLOW_THREADS
	dh_key_wipe(k);
	if (rc < 0) {
		raise_rc(rc, name);
		return -1;
	}
	self->r = r;
	self->pid = getpid();
	if ((self->name = strdup(name)) == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	if (label != NULL && (self->label = PyUnicode_FromString(label)) == NULL)
		return -1;
	rc = channel_schema(dh_reader_block(r), &self->schema, &self->record_size);
	if (rc < 0) {
		raise_rc(rc, name);
		return -1;
	}
	return 0;
}

static void
reader_dealloc(ReaderObject *self)
{
	if (self->weakrefs != NULL)
		PyObject_ClearWeakRefs((PyObject *)self);
	self->closed = 1;
	self->exports = 0; /* no Message can outlive its reader: each holds a reference */
	reader_finish(self);
	free(self->name);
	Py_CLEAR(self->schema);
	Py_CLEAR(self->label);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

PyDoc_STRVAR(reader_close_doc,
"close()\n--\n\n"
"Detach from the channel. Idempotent. Data views of messages still held\n"
"keep the mapping alive: the reader is then released (a queue claim handed\n"
"back, a sync position advanced) at once and detached when the last view\n"
"goes.");

static PyObject *
reader_close(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "Reader is in use by another thread");
		return NULL;
	}
	if (!self->closed) {
		self->closed = 1;
		self->gen++;
		if (self->r != NULL && self->exports > 0 && self->pid == getpid())
			dh_reader_release(self->r);
		reader_finish(self);
	}
	Py_RETURN_NONE;
}

PyDoc_STRVAR(reader_read_doc,
"read(timeout=<the reader's>)\n--\n\n"
"The next message: a Message, or None at end-of-stream. Raises Timeout when\n"
"none arrives within timeout seconds (None: wait forever; 0: do not wait),\n"
"ChecksumError (seq says which; the message is skipped: read again to go\n"
"on), WriterDead, Evicted.");

static PyObject *
reader_read(ReaderObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = NULL;
	int64_t t;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:read", kwlist, &timeout))
		return NULL;
	t = self->timeout_ns;
	if (timeout != NULL && timeout_arg(timeout, &t) < 0)
		return NULL;
	return reader_read1(self, t);
}

static PyObject *
reader_iternext(ReaderObject *self)
{
	PyObject *m = reader_read1(self, self->timeout_ns);

	if (m == Py_None) {
		Py_DECREF(m);
		return NULL; /* StopIteration */
	}
	return m;
}

static PyObject *
reader_iter(PyObject *self)
{
	Py_INCREF(self);
	return self;
}

static PyObject *
reader_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
	if (reader_usable((ReaderObject *)self) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *
reader_exit(ReaderObject *self, PyObject *args)
{
	(void)args;
	return reader_close(self, NULL);
}

PyDoc_STRVAR(reader_readinto_doc,
"_read_records(buffer, max, timeout) -> int\n--\n\n"
"Copy up to max records (each record_size bytes) into the writable buffer:\n"
"waits up to timeout for the first, then takes only what is ready. Returns\n"
"the count; 0 means end-of-stream. Used by Reader.read_records.");

static PyObject *
reader_read_records_into(ReaderObject *self, PyObject *args)
{
	PyObject *bufobj, *timeout = NULL;
	Py_ssize_t max, n = 0;
	Py_buffer b;
	int64_t t;
	struct dh_msg m;
	int rc;

	if (!PyArg_ParseTuple(args, "OnO:_read_records", &bufobj, &max, &timeout))
		return NULL;
	if (reader_usable(self) < 0 || timeout_arg(timeout, &t) < 0)
		return NULL;
	if (self->record_size == 0) {
		PyErr_Format(PyExc_TypeError, "%s: channel has no schema: records need one", self->name);
		return NULL;
	}
	if (PyObject_GetBuffer(bufobj, &b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0)
		return NULL;
	if (max < 0 || b.len < max * (Py_ssize_t)self->record_size) {
		PyBuffer_Release(&b);
		PyErr_SetString(PyExc_ValueError, "buffer too small for max records");
		return NULL;
	}
	while (n < max) {
		rc = n == 0 ? reader_next_wait(self, &m, t) : (self->gen++, dh_reader_next(self->r, &m, 0));
		if (rc == 0) {
			if (m.len != self->record_size) {
				PyBuffer_Release(&b);
				return PyErr_Format(PyExc_ValueError,
						    "%s: message at seq %llu is %zu bytes, not a record (%u bytes)",
						    self->name, (unsigned long long)m.seq, m.len, self->record_size);
			}
			memcpy((char *)b.buf + n * (Py_ssize_t)self->record_size, m.data, m.len);
			n++;
			continue;
		}
		if (rc == -DH_ECHECKSUM) {
			self->checksum_failures++;
			if (self->skip_bad)
				continue;
		}
		if (n > 0 && (rc == -EAGAIN || rc == DH_END || rc == -DH_EWRITERDEAD || rc == -DH_ECHECKSUM))
			break; /* deliver what we have; the condition shows on the next call */
		PyBuffer_Release(&b);
		if (rc == DH_END)
			return PyLong_FromLong(0);
		if (rc == -EAGAIN)
			rc = -ETIMEDOUT;
		return raise_rc(rc, self->name);
	}
	if (self->r != NULL)
		dh_reader_release(self->r);
	PyBuffer_Release(&b);
	return PyLong_FromSsize_t(n);
}

static PyObject *
block_meta(struct dh_block *b, const char *name)
{
	size_t cap = dh_meta_capacity(b);
	PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)cap + 1);
	ssize_t n;

	if (out == NULL)
		return NULL;
	n = dh_meta_read(b, PyBytes_AS_STRING(out), cap + 1);
	if (n < 0) {
		Py_DECREF(out);
		return raise_rc((int)n, name);
	}
	_PyBytes_Resize(&out, n);
	return out;
}

static PyObject *
reader_get_meta(ReaderObject *self, void *closure)
{
	(void)closure;
	if (reader_usable(self) < 0)
		return NULL;
	return block_meta(dh_reader_block(self->r), self->name);
}

static PyObject *
reader_repr(ReaderObject *self)
{
	if (self->r == NULL || self->closed)
		return PyUnicode_FromFormat("<dh.Reader %s closed>", self->name ? self->name : "?");
	return PyUnicode_FromFormat("<dh.Reader %s position=%llu lost=%llu%s%s>", self->name,
				    (unsigned long long)dh_reader_position(self->r),
				    (unsigned long long)dh_reader_lost(self->r), self->schema ? " schema=" : "",
				    self->schema ? PyUnicode_AsUTF8(self->schema) : "");
}

static PyObject *
reader_get_name(ReaderObject *self, void *c)
{
	(void)c;
	return PyUnicode_FromString(self->name ? self->name : "");
}

static PyObject *
reader_get_schema(ReaderObject *self, void *c)
{
	(void)c;
	if (self->schema == NULL)
		Py_RETURN_NONE;
	Py_INCREF(self->schema);
	return self->schema;
}

static PyObject *
reader_get_record_size(ReaderObject *self, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(self->record_size);
}

static PyObject *
reader_get_position(ReaderObject *self, void *c)
{
	(void)c;
	if (reader_usable(self) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(dh_reader_position(self->r));
}

static PyObject *
reader_get_lost(ReaderObject *self, void *c)
{
	(void)c;
	if (reader_usable(self) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(dh_reader_lost(self->r));
}

static PyObject *
reader_get_closed(ReaderObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(self->closed || self->r == NULL);
}

static PyObject *
reader_get_timeout(ReaderObject *self, void *c)
{
	(void)c;
	if (self->timeout_ns < 0)
		Py_RETURN_NONE;
	return PyFloat_FromDouble((double)self->timeout_ns / 1e9);
}

static int
reader_set_timeout(ReaderObject *self, PyObject *v, void *c)
{
	(void)c;
	if (v == NULL) {
		PyErr_SetString(PyExc_AttributeError, "cannot delete timeout");
		return -1;
	}
	return timeout_arg(v, &self->timeout_ns);
}

static PyObject *
reader_get_failures(ReaderObject *self, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(self->checksum_failures);
}

static PyMethodDef reader_methods[] = {
	{ "read", (PyCFunction)(void (*)(void))reader_read, METH_VARARGS | METH_KEYWORDS, reader_read_doc },
	{ "close", (PyCFunction)reader_close, METH_NOARGS, reader_close_doc },
	{ "_read_records", (PyCFunction)reader_read_records_into, METH_VARARGS, reader_readinto_doc },
	{ "__enter__", (PyCFunction)reader_enter, METH_NOARGS, "Return self." },
	{ "__exit__", (PyCFunction)reader_exit, METH_VARARGS, "Close the reader." },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef reader_getset[] = {
	{ "name", (getter)reader_get_name, NULL, "Channel name.", NULL },
	{ "schema", (getter)reader_get_schema, NULL, "Canonical record schema of the channel, or None.", NULL },
	{ "record_size", (getter)reader_get_record_size, NULL, "Record size in bytes (0: no schema).", NULL },
	{ "position", (getter)reader_get_position, NULL, "Sequence number this reader reads next.", NULL },
	{ "lost", (getter)reader_get_lost, NULL, "Messages lost to laps since attaching.", NULL },
	{ "closed", (getter)reader_get_closed, NULL, "True once closed.", NULL },
	{ "timeout", (getter)reader_get_timeout, (setter)reader_set_timeout,
	  "Default wait of read() and iteration, seconds (None: forever).", NULL },
	{ "checksum_failures", (getter)reader_get_failures, NULL, "Messages that failed their checksum.", NULL },
	{ "meta", (getter)reader_get_meta, NULL, "The channel's metadata zone (bytes).", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyDoc_STRVAR(reader_doc,
"Reader(name, *, start=None, timeout=None, follow=False, label=None, key=None,\n"
"       schema=None, skip_bad=False)\n--\n\n"
"A reader of channel name. Iterating yields Message objects until\n"
"end-of-stream. start: 'oldest', 'latest', 'now', a sequence number, or\n"
"None for the policy's default. timeout: seconds each wait may take (None:\n"
"forever), after which Timeout is raised. follow: wait across writers\n"
"instead of ending at end-of-stream or a dead writer. key: the MAC key of a\n"
"keyed channel (32 bytes or a key file path). schema: refuse a channel\n"
"whose schema differs (SchemaMismatch). skip_bad: skip messages that fail\n"
"their checksum (counted in checksum_failures) instead of raising\n"
"ChecksumError. One thread per Reader.");

static PyTypeObject ReaderType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "dh._dh.Reader",
	.tp_basicsize = sizeof(ReaderObject),
	.tp_dealloc = (destructor)reader_dealloc,
	.tp_repr = (reprfunc)reader_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = reader_doc,
	.tp_weaklistoffset = offsetof(ReaderObject, weakrefs),
	.tp_iter = reader_iter,
	.tp_iternext = (iternextfunc)reader_iternext,
	.tp_methods = reader_methods,
	.tp_getset = reader_getset,
	.tp_init = (initproc)reader_init,
	.tp_new = PyType_GenericNew,
};

/* Message */

static int
message_valid(MessageObject *m)
{
	ReaderObject *r = m->reader;

	if (r->closed || r->r == NULL || r->gen != m->gen) {
		PyErr_SetString(PyExc_ValueError,
				"message data is no longer valid: the reader moved on or closed "
				"(copy it with bytes(m.data) to keep it)");
		return -1;
	}
	return 0;
}

static int
message_getbuffer(MessageObject *m, Py_buffer *view, int flags)
{
	if (message_valid(m) < 0)
		return -1;
	if (PyBuffer_FillInfo(view, (PyObject *)m, (void *)m->data, (Py_ssize_t)m->len, 1, flags) < 0)
		return -1;
	m->reader->exports++;
	return 0;
}

static void
message_releasebuffer(MessageObject *m, Py_buffer *view)
{
	(void)view;
	if (--m->reader->exports == 0 && m->reader->closed)
		reader_finish(m->reader);
}

static PyBufferProcs message_as_buffer = {
	(getbufferproc)message_getbuffer,
	(releasebufferproc)message_releasebuffer,
};

static void
message_dealloc(MessageObject *m)
{
	Py_XDECREF(m->reader);
	PyObject_Free(m);
}

static PyObject *
message_get_data(MessageObject *m, void *c)
{
	(void)c;
	return PyMemoryView_FromObject((PyObject *)m);
}

static PyObject *
message_get_seq(MessageObject *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(m->seq);
}

static PyObject *
message_get_time(MessageObject *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(m->time_ns);
}

static PyObject *
message_get_lost(MessageObject *m, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLongLong(m->lost);
}

static PyObject *
message_get_valid(MessageObject *m, void *c)
{
	ReaderObject *r = m->reader;

	(void)c;
	return PyBool_FromLong(!r->closed && r->r != NULL && r->gen == m->gen);
}

static Py_ssize_t
message_len(MessageObject *m)
{
	return (Py_ssize_t)m->len;
}

static PyObject *
message_bytes(MessageObject *m, PyObject *Py_UNUSED(ignored))
{
	if (message_valid(m) < 0)
		return NULL;
	return PyBytes_FromStringAndSize(m->data, (Py_ssize_t)m->len);
}

static PyObject *
message_repr(MessageObject *m)
{
	return PyUnicode_FromFormat("<dh.Message seq=%llu len=%zu time_ns=%llu lost=%llu%s>",
				    (unsigned long long)m->seq, m->len, (unsigned long long)m->time_ns,
				    (unsigned long long)m->lost,
				    m->reader->gen == m->gen && !m->reader->closed ? "" : " stale");
}

static PyGetSetDef message_getset[] = {
	{ "data", (getter)message_get_data, NULL,
	  "The payload as a read-only memoryview, zero-copy (into the slot for\n"
	  "sync and queue, a validated private copy for latest and ring); valid\n"
	  "until the reader reads again or closes.", NULL },
	{ "seq", (getter)message_get_seq, NULL, "Sequence number.", NULL },
	{ "time_ns", (getter)message_get_time, NULL, "Commit time, ns since the epoch (CLOCK_REALTIME).", NULL },
	{ "lost", (getter)message_get_lost, NULL, "Messages lost to a lap just before this one.", NULL },
	{ "valid", (getter)message_get_valid, NULL, "True while data may be used.", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

static PyMethodDef message_methods[] = {
	{ "tobytes", (PyCFunction)message_bytes, METH_NOARGS, "A copy of the payload as bytes." },
	{ NULL, NULL, 0, NULL }
};

static PySequenceMethods message_as_seq = { .sq_length = (lenfunc)message_len };

static PyTypeObject MessageType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "dh._dh.Message",
	.tp_basicsize = sizeof(MessageObject),
	.tp_dealloc = (destructor)message_dealloc,
	.tp_repr = (reprfunc)message_repr,
	.tp_as_sequence = &message_as_seq,
	.tp_as_buffer = &message_as_buffer,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "One message of a Reader: seq, time_ns, lost and data (a memoryview valid\n"
		  "until the next read). Supports the buffer protocol (bytes(m), numpy.frombuffer(m)).",
	.tp_methods = message_methods,
	.tp_getset = message_getset,
};

/* ---- Writer and Transaction -------------------------------------------------- */

typedef struct TxnObject TxnObject;

typedef struct {
	PyObject_HEAD
	struct dh_writer *w;
	char *name;
	int64_t timeout_ns;
	int closed, busy, eos_on_exit;
	unsigned batch;           /* set_batch's value in force; write_many restores it */
	pid_t pid;
	uint32_t record_size;
	PyObject *schema;
	TxnObject *txn;           /* the open reservation (borrowed: it holds a reference to us) */
	PyObject *weakrefs;
} WriterObject;

struct TxnObject {
	PyObject_HEAD
	WriterObject *writer;
	void *buf;
	size_t cap, size;
	Py_ssize_t requested;     /* -1: default size */
	int64_t timeout_ns;
	int state;                /* 0 new, 1 reserved, 2 done */
	Py_ssize_t exports;
	PyObject *view;           /* weak reference to the memoryview handed to the with block
				   * (a strong one would be a cycle through its buffer) */
};

static PyTypeObject WriterType, TxnType;

/* Release the memoryview *ref weakly refers to, if it is still alive; a
 * view with exports of its own stays (the caller counts those). */
static void
release_view(PyObject **ref)
{
	PyObject *mv = *ref != NULL ? PyWeakref_GetObject(*ref) : NULL;

	if (mv != NULL && mv != Py_None) {
		PyObject *r;

		Py_INCREF(mv);
		if ((r = PyObject_CallMethod(mv, "release", NULL)) == NULL)
			PyErr_Clear();
		Py_XDECREF(r);
		Py_DECREF(mv);
	}
	Py_CLEAR(*ref);
}

static void
writer_finish(WriterObject *self)
{
	if (self->w != NULL && (self->txn == NULL || self->txn->exports == 0)) {
		struct dh_writer *w = self->w;

		self->w = NULL;
		if (self->pid == getpid())
			dh_writer_close(w);    /* aborts an uncommitted reservation */
	}
}

static int
writer_usable(WriterObject *self)
{
	if (self->closed || self->w == NULL) {
		PyErr_SetString(PyExc_ValueError, "I/O operation on a closed Writer");
		return -1;
	}
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError,
				"Writer is in use by another thread (one thread per handle)");
		return -1;
	}
	return 0;
}

static int
writer_init(WriterObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", "label", "key", "schema", "timeout", "eos", NULL };
	const char *name, *label = NULL, *schema = NULL;
	PyObject *key = NULL, *timeout = NULL;
	int eos = 1, has_key = 0, rc;
	uint8_t k[DH_KEY_BYTES];
	struct dh_writer_opts wo;
	struct dh_writer *w;
	pid_t holder = 0;

	if (self->w != NULL || self->name != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "Writer already initialised");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|$zOzOp:Writer", kwlist, &name, &label, &key, &schema,
					 &timeout, &eos))
		return -1;
	if (name_arg(name) < 0 || timeout_arg(timeout, &self->timeout_ns) < 0)
		return -1;
	if (key_arg(key, k, &has_key, name) < 0)
		return -1;
	memset(&wo, 0, sizeof wo);
	wo.label = label;
	wo.key = has_key ? k : NULL;
	wo.schema = schema;
	Py_BEGIN_ALLOW_THREADS
	rc = dh_writer_open_opts(name, &wo, &w, &holder);
	Py_END_ALLOW_THREADS
	dh_key_wipe(k);
	if (rc < 0) {
		raise_rc(rc, name);
		if (rc == -EBUSY && holder > 0) {
			PyObject *t, *v, *tb, *p;
			PyErr_Fetch(&t, &v, &tb);
			PyErr_NormalizeException(&t, &v, &tb);
			if (v != NULL && (p = PyLong_FromLong(holder)) != NULL) {
				PyObject_SetAttrString(v, "holder", p);
				Py_DECREF(p);
			}
			PyErr_Restore(t, v, tb);
		}
		return -1;
	}
	self->w = w;
	self->pid = getpid();
	self->eos_on_exit = eos;
	self->batch = 1;
	if ((self->name = strdup(name)) == NULL) {
		PyErr_NoMemory();
		return -1;
	}
	rc = channel_schema(dh_writer_block(w), &self->schema, &self->record_size);
	if (rc < 0) {
		raise_rc(rc, name);
		return -1;
	}
	return 0;
}

static void
writer_dealloc(WriterObject *self)
{
	if (self->weakrefs != NULL)
		PyObject_ClearWeakRefs((PyObject *)self);
	self->closed = 1;
	self->txn = NULL;   /* a live transaction would hold a reference to us */
	writer_finish(self);
	free(self->name);
	Py_CLEAR(self->schema);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reserve with the GIL released, in slices. */
static int
writer_reserve_wait(WriterObject *self, void **buf, size_t *cap, int64_t timeout_ns)
{
	int64_t deadline = 0;
	int rc = dh_writer_reserve(self->w, buf, cap, 0);

	if (rc != -EAGAIN || timeout_ns == 0)
		return rc;
	if (timeout_ns > 0)
		deadline = now_mono() + timeout_ns;
	for (;;) {
		int64_t slice = SLICE_NS;

		if (timeout_ns > 0) {
			int64_t rem = deadline - now_mono();
			if (rem <= 0)
				return -ETIMEDOUT;
			if (rem < slice)
				slice = rem;
		}
		self->busy = 1;
		Py_BEGIN_ALLOW_THREADS
		rc = dh_writer_reserve(self->w, buf, cap, slice);
		Py_END_ALLOW_THREADS
		self->busy = 0;
		if (rc != -ETIMEDOUT && rc != -EINTR)
			return rc;
		if (PyErr_CheckSignals() < 0)
			return ERR_PY;
	}
}

/* Copy len bytes as one message; the copy runs without the GIL when large. */
static int
writer_put(WriterObject *self, const void *data, size_t len, int64_t timeout_ns)
{
	void *buf;
	size_t cap;
	int rc;

	if (len < BIG_COPY) {
		rc = dh_writer_write(self->w, data, len, 0);
		if (rc != -EAGAIN || timeout_ns == 0)
			return rc;
	}
	rc = writer_reserve_wait(self, &buf, &cap, timeout_ns);
	if (rc < 0)
		return rc;
	if (len > cap) {
		dh_writer_abort(self->w);
		return -DH_ETOOBIG;
	}
	if (len >= BIG_COPY) {
		Py_BEGIN_ALLOW_THREADS
		memcpy(buf, data, len);
		rc = dh_writer_commit(self->w, len);
		Py_END_ALLOW_THREADS
	} else {
		memcpy(buf, data, len);
		rc = dh_writer_commit(self->w, len);
	}
	if (rc < 0)
		dh_writer_abort(self->w);
	return rc;
}

static int
writer_check_idle(WriterObject *self)
{
	if (writer_usable(self) < 0)
		return -1;
	if (self->txn != NULL && self->txn->state == 1) {
		PyErr_SetString(PyExc_RuntimeError, "a reservation is open: commit or abort it first");
		return -1;
	}
	return 0;
}

PyDoc_STRVAR(writer_write_doc,
"write(data, timeout=<the writer's>)\n--\n\n"
"Publish data (bytes or any contiguous buffer) as one message. Waits for\n"
"space (sync, queue) up to timeout seconds, then raises Timeout.\n"
"MessageTooBig if it exceeds the slot; SchemaMismatch on a schema channel\n"
"if it is not one record.");

/* METH_FASTCALL: at 64-byte messages, argument parsing is a good part of
 * the cost of a write. */
static PyObject *
writer_write(WriterObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
	PyObject *data, *timeout = NULL;
	Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
	Py_buffer b;
	int64_t t;
	int rc;

	if (nargs + nkw < 1 || nargs + nkw > 2) {
		PyErr_Format(PyExc_TypeError, "write() takes data and an optional timeout (%zd arguments given)",
			     nargs + nkw);
		return NULL;
	}
	data = nargs >= 1 ? args[0] : NULL;
	if (nargs == 2)
		timeout = args[1];
	for (Py_ssize_t i = 0; i < nkw; i++) {
		const char *k = PyUnicode_AsUTF8(PyTuple_GET_ITEM(kwnames, i));

		if (k != NULL && strcmp(k, "data") == 0 && data == NULL)
			data = args[nargs + i];
		else if (k != NULL && strcmp(k, "timeout") == 0 && timeout == NULL)
			timeout = args[nargs + i];
		else {
			PyErr_Format(PyExc_TypeError, "write() got an unexpected or repeated keyword argument '%s'",
				     k ? k : "?");
			return NULL;
		}
	}
	if (data == NULL) {
		PyErr_SetString(PyExc_TypeError, "write() missing its data");
		return NULL;
	}
	t = self->timeout_ns;
	if (writer_check_idle(self) < 0 || (timeout != NULL && timeout_arg(timeout, &t) < 0))
		return NULL;
	if (PyObject_GetBuffer(data, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	rc = writer_put(self, b.buf, (size_t)b.len, t);
	PyBuffer_Release(&b);
	if (rc < 0)
		return raise_rc(rc == -EAGAIN ? -ETIMEDOUT : rc, self->name);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(writer_write_many_doc,
"write_many(data, size, timeout=<the writer's>) -> int\n--\n\n"
"Publish a contiguous buffer as consecutive messages of size bytes each\n"
"(the last may be shorter). Returns the number of messages. For arrays of\n"
"records: one call instead of one per record.");

static PyObject *
writer_write_many(WriterObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "data", "size", "timeout", NULL };
	PyObject *timeout = NULL;
	Py_ssize_t size, off, n = 0;
	Py_buffer b;
	int64_t t;
	int rc = 0;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "y*n|O:write_many", kwlist, &b, &size, &timeout))
		return NULL;
	t = self->timeout_ns;
	if (writer_check_idle(self) < 0 || (timeout != NULL && timeout_arg(timeout, &t) < 0)) {
		PyBuffer_Release(&b);
		return NULL;
	}
	if (size <= 0) {
		PyBuffer_Release(&b);
		PyErr_SetString(PyExc_ValueError, "size must be > 0");
		return NULL;
	}
	/* published in batches, and all of it before we return */
	dh_writer_set_batch(self->w, 256);
	for (off = 0; off < b.len; off += size) {
		Py_ssize_t len = b.len - off < size ? b.len - off : size;

		rc = writer_put(self, (const char *)b.buf + off, (size_t)len, t);
		if (rc < 0)
			break;
		n++;
	}
	dh_writer_flush(self->w);
	dh_writer_set_batch(self->w, self->batch);
	PyBuffer_Release(&b);
	if (rc < 0)
		return raise_rc(rc == -EAGAIN ? -ETIMEDOUT : rc, self->name);
	return PyLong_FromSsize_t(n);
}

PyDoc_STRVAR(writer_reserve_doc,
"reserve(size=None, timeout=<the writer's>) -> Transaction\n--\n\n"
"A transaction on the next slot, as a context manager: entering reserves\n"
"the slot (waiting for space) and gives a writable memoryview of size\n"
"bytes (default: the record size on a schema channel, else the whole slot)\n"
"straight into shared memory; a clean exit commits it, an exception\n"
"aborts it (nothing becomes visible). Views derived from the slot must not\n"
"outlive the block: if one does, the commit is refused (BufferError) and\n"
"the slot aborted.");

static PyObject *
writer_reserve(WriterObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "size", "timeout", NULL };
	PyObject *size = Py_None, *timeout = NULL;
	TxnObject *t;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|OO:reserve", kwlist, &size, &timeout))
		return NULL;
	if (writer_check_idle(self) < 0)
		return NULL;
	if ((t = PyObject_New(TxnObject, &TxnType)) == NULL)
		return NULL;
	t->writer = self;
	Py_INCREF(self);
	t->buf = NULL;
	t->cap = t->size = 0;
	t->state = 0;
	t->exports = 0;
	t->view = NULL;
	t->requested = -1;
	t->timeout_ns = self->timeout_ns;
	if (size != Py_None) {
		t->requested = PyLong_AsSsize_t(size);
		if (t->requested == -1 && PyErr_Occurred()) {
			Py_DECREF(t);
			return NULL;
		}
		if (t->requested < 0) {
			Py_DECREF(t);
			PyErr_SetString(PyExc_ValueError, "size must be >= 0");
			return NULL;
		}
	}
	if (timeout != NULL && timeout_arg(timeout, &t->timeout_ns) < 0) {
		Py_DECREF(t);
		return NULL;
	}
	return (PyObject *)t;
}

PyDoc_STRVAR(writer_eos_doc, "eos()\n--\n\nMark end-of-stream: readers finish after what is committed.");

static PyObject *
writer_eos(WriterObject *self, PyObject *Py_UNUSED(ignored))
{
	int rc;

	if (writer_check_idle(self) < 0)
		return NULL;
	if ((rc = dh_writer_eos(self->w)) < 0)
		return raise_rc(rc, self->name);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(writer_flush_doc, "flush()\n--\n\nPublish every commit of the batch being built (see set_batch).");

static PyObject *
writer_flush(WriterObject *self, PyObject *Py_UNUSED(ignored))
{
	if (writer_usable(self) < 0)
		return NULL;
	dh_writer_flush(self->w);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(writer_set_batch_doc,
"set_batch(n) -> int\n--\n\n"
"Publish commits in batches of up to n (clamped to half the ring's slots;\n"
"0 or 1: each at once, the default): readers see a batch at once, when it\n"
"is full, at flush(), before the writer waits for space, at eos() and at\n"
"close.  Every message of a batch carries the commit time of its first.\n"
"Returns the batch size in force.");

static PyObject *
writer_set_batch(WriterObject *self, PyObject *arg)
{
	unsigned long n = PyLong_AsUnsignedLong(arg);

	if (n == (unsigned long)-1 && PyErr_Occurred())
		return NULL;
	if (writer_usable(self) < 0)
		return NULL;
	self->batch = dh_writer_set_batch(self->w, n > UINT_MAX ? UINT_MAX : (unsigned)n);
	return PyLong_FromUnsignedLong(self->batch);
}

PyDoc_STRVAR(writer_wait_readers_doc,
"wait_readers(n=1, timeout=<the writer's>)\n--\n\n"
"Wait until at least n readers are attached and alive (Timeout otherwise).");

static PyObject *
writer_wait_readers(WriterObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "n", "timeout", NULL };
	unsigned int n = 1;
	PyObject *timeout = NULL;
	int64_t t, deadline = 0;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|IO:wait_readers", kwlist, &n, &timeout))
		return NULL;
	t = self->timeout_ns;
	if (writer_check_idle(self) < 0 || (timeout != NULL && timeout_arg(timeout, &t) < 0))
		return NULL;
	if (t > 0)
		deadline = now_mono() + t;
	for (;;) {
		int64_t slice = SLICE_NS;

		if (t == 0)
			slice = 0;
		else if (t > 0) {
			int64_t rem = deadline - now_mono();
			if (rem < 0)
				rem = 0;
			if (rem < slice)
				slice = rem;
		}
		self->busy = 1;
		Py_BEGIN_ALLOW_THREADS
		rc = dh_writer_wait_readers(self->w, n, slice);
		Py_END_ALLOW_THREADS
		self->busy = 0;
		if (rc == 0)
			Py_RETURN_NONE;
		if (rc != -ETIMEDOUT && rc != -EINTR && rc != -EAGAIN)
			return raise_rc(rc, self->name);
		if (PyErr_CheckSignals() < 0)
			return NULL;
		if (t == 0 || (t > 0 && now_mono() >= deadline))
			return raise_rc(-ETIMEDOUT, self->name);
	}
}

PyDoc_STRVAR(writer_close_doc,
"close()\n--\n\n"
"Release the writer without marking end-of-stream: readers wait for a\n"
"next writer (a writer that dies instead shows as WriterDead to them).\n"
"Aborts an open reservation. Idempotent. Leaving a `with` block normally\n"
"marks end-of-stream first (unless eos=False).");

static PyObject *
writer_close(WriterObject *self, PyObject *Py_UNUSED(ignored))
{
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "Writer is in use by another thread");
		return NULL;
	}
	if (!self->closed) {
		self->closed = 1;
		if (self->txn != NULL && self->txn->state == 1) {
			TxnObject *t = self->txn;
			release_view(&t->view);
			if (self->w != NULL && self->pid == getpid())
				dh_writer_abort(self->w);
			t->state = 2;
		}
		writer_finish(self);
	}
	Py_RETURN_NONE;
}

static PyObject *
writer_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
	if (writer_usable((WriterObject *)self) < 0)
		return NULL;
	Py_INCREF(self);
	return self;
}

static PyObject *
writer_exit(WriterObject *self, PyObject *args)
{
	PyObject *type = Py_None, *value = Py_None, *tb = Py_None;

	if (!PyArg_UnpackTuple(args, "__exit__", 0, 3, &type, &value, &tb))
		return NULL;
	if (type == Py_None && self->eos_on_exit && !self->closed && self->w != NULL &&
	    (self->txn == NULL || self->txn->state != 1)) {
		int rc = dh_writer_eos(self->w);
		if (rc < 0) {
			writer_close(self, NULL);
			return raise_rc(rc, self->name);
		}
	}
	return writer_close(self, NULL);
}

PyDoc_STRVAR(writer_set_meta_doc,
"set_meta(data)\n--\n\nReplace the channel's metadata zone atomically.");

static PyObject *
writer_set_meta(WriterObject *self, PyObject *arg)
{
	Py_buffer b;
	int rc;

	if (writer_usable(self) < 0 || PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0)
		return NULL;
	rc = dh_meta_write(dh_writer_block(self->w), b.buf, (size_t)b.len);
	PyBuffer_Release(&b);
	if (rc < 0)
		return raise_rc(rc, self->name);
	Py_RETURN_NONE;
}

static PyObject *
writer_get_meta(WriterObject *self, void *c)
{
	(void)c;
	if (writer_usable(self) < 0)
		return NULL;
	return block_meta(dh_writer_block(self->w), self->name);
}

static PyObject *
writer_repr(WriterObject *self)
{
	if (self->w == NULL || self->closed)
		return PyUnicode_FromFormat("<dh.Writer %s closed>", self->name ? self->name : "?");
	return PyUnicode_FromFormat("<dh.Writer %s seq=%llu slot_size=%zu%s%s>", self->name,
				    (unsigned long long)dh_writer_seq(self->w), dh_writer_slot_size(self->w),
				    self->schema ? " schema=" : "", self->schema ? PyUnicode_AsUTF8(self->schema) : "");
}

static PyObject *
writer_get_name(WriterObject *self, void *c)
{
	(void)c;
	return PyUnicode_FromString(self->name ? self->name : "");
}

static PyObject *
writer_get_pending(WriterObject *self, void *c)
{
	(void)c;
	if (writer_usable(self) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(dh_writer_pending(self->w));
}

static PyObject *
writer_get_seq(WriterObject *self, void *c)
{
	(void)c;
	if (writer_usable(self) < 0)
		return NULL;
	return PyLong_FromUnsignedLongLong(dh_writer_seq(self->w));
}

static PyObject *
writer_get_slot_size(WriterObject *self, void *c)
{
	(void)c;
	if (writer_usable(self) < 0)
		return NULL;
	return PyLong_FromSize_t(dh_writer_slot_size(self->w));
}

static PyObject *
writer_get_schema(WriterObject *self, void *c)
{
	(void)c;
	if (self->schema == NULL)
		Py_RETURN_NONE;
	Py_INCREF(self->schema);
	return self->schema;
}

static PyObject *
writer_get_record_size(WriterObject *self, void *c)
{
	(void)c;
	return PyLong_FromUnsignedLong(self->record_size);
}

static PyObject *
writer_get_closed(WriterObject *self, void *c)
{
	(void)c;
	return PyBool_FromLong(self->closed || self->w == NULL);
}

static PyObject *
writer_get_timeout(WriterObject *self, void *c)
{
	(void)c;
	if (self->timeout_ns < 0)
		Py_RETURN_NONE;
	return PyFloat_FromDouble((double)self->timeout_ns / 1e9);
}

static int
writer_set_timeout(WriterObject *self, PyObject *v, void *c)
{
	(void)c;
	if (v == NULL) {
		PyErr_SetString(PyExc_AttributeError, "cannot delete timeout");
		return -1;
	}
	return timeout_arg(v, &self->timeout_ns);
}

static PyMethodDef writer_methods[] = {
	{ "write", (PyCFunction)(void (*)(void))writer_write, METH_FASTCALL | METH_KEYWORDS, writer_write_doc },
	{ "write_many", (PyCFunction)(void (*)(void))writer_write_many, METH_VARARGS | METH_KEYWORDS,
	  writer_write_many_doc },
	{ "reserve", (PyCFunction)(void (*)(void))writer_reserve, METH_VARARGS | METH_KEYWORDS, writer_reserve_doc },
	{ "eos", (PyCFunction)writer_eos, METH_NOARGS, writer_eos_doc },
	{ "flush", (PyCFunction)writer_flush, METH_NOARGS, writer_flush_doc },
	{ "set_batch", (PyCFunction)writer_set_batch, METH_O, writer_set_batch_doc },
	{ "wait_readers", (PyCFunction)(void (*)(void))writer_wait_readers, METH_VARARGS | METH_KEYWORDS,
	  writer_wait_readers_doc },
	{ "set_meta", (PyCFunction)writer_set_meta, METH_O, writer_set_meta_doc },
	{ "close", (PyCFunction)writer_close, METH_NOARGS, writer_close_doc },
	{ "__enter__", (PyCFunction)writer_enter, METH_NOARGS, "Return self." },
	{ "__exit__", (PyCFunction)writer_exit, METH_VARARGS,
	  "Mark end-of-stream (on a clean exit, unless eos=False) and close." },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef writer_getset[] = {
	{ "name", (getter)writer_get_name, NULL, "Channel name.", NULL },
	{ "seq", (getter)writer_get_seq, NULL, "Sequence number the next commit gets.", NULL },
	{ "pending", (getter)writer_get_pending, NULL, "Commits not yet published (see set_batch).", NULL },
	{ "slot_size", (getter)writer_get_slot_size, NULL, "Largest message, bytes.", NULL },
	{ "schema", (getter)writer_get_schema, NULL, "Canonical record schema of the channel, or None.", NULL },
	{ "record_size", (getter)writer_get_record_size, NULL, "Record size in bytes (0: no schema).", NULL },
	{ "closed", (getter)writer_get_closed, NULL, "True once closed.", NULL },
	{ "timeout", (getter)writer_get_timeout, (setter)writer_set_timeout,
	  "Default wait for space, seconds (None: forever).", NULL },
	{ "meta", (getter)writer_get_meta, NULL, "The channel's metadata zone (bytes).", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyDoc_STRVAR(writer_doc,
"Writer(name, *, label=None, key=None, schema=None, timeout=None, eos=True)\n--\n\n"
"The single writer of channel name (ChannelBusy, with the holder's pid, if\n"
"another is alive). As a context manager it marks end-of-stream on a clean\n"
"exit (eos=False: never) and closes; an exception closes without it.\n"
"timeout: seconds a write may wait for space (None: forever). key: the MAC\n"
"key of a keyed channel (32 bytes or a key file path). schema: refuse a\n"
"channel whose schema differs. One thread per Writer.");

static PyTypeObject WriterType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "dh._dh.Writer",
	.tp_basicsize = sizeof(WriterObject),
	.tp_dealloc = (destructor)writer_dealloc,
	.tp_repr = (reprfunc)writer_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = writer_doc,
	.tp_weaklistoffset = offsetof(WriterObject, weakrefs),
	.tp_methods = writer_methods,
	.tp_getset = writer_getset,
	.tp_init = (initproc)writer_init,
	.tp_new = PyType_GenericNew,
};

/* Transaction */

static int
txn_getbuffer(TxnObject *t, Py_buffer *view, int flags)
{
	if (t->state != 1) {
		PyErr_SetString(PyExc_BufferError, "the transaction is not open");
		return -1;
	}
	if (PyBuffer_FillInfo(view, (PyObject *)t, t->buf, (Py_ssize_t)t->size, 0, flags) < 0)
		return -1;
	t->exports++;
	return 0;
}

static void
txn_releasebuffer(TxnObject *t, Py_buffer *view)
{
	(void)view;
	if (--t->exports == 0 && t->writer->closed)
		writer_finish(t->writer);
}

static PyBufferProcs txn_as_buffer = {
	(getbufferproc)txn_getbuffer,
	(releasebufferproc)txn_releasebuffer,
};

static PyObject *
txn_enter(TxnObject *t, PyObject *Py_UNUSED(ignored))
{
	WriterObject *w = t->writer;
	int rc;

	if (t->state != 0) {
		PyErr_SetString(PyExc_RuntimeError, "a Transaction can be entered once");
		return NULL;
	}
	if (writer_check_idle(w) < 0)
		return NULL;
	rc = writer_reserve_wait(w, &t->buf, &t->cap, t->timeout_ns);
	if (rc < 0)
		return raise_rc(rc == -EAGAIN ? -ETIMEDOUT : rc, w->name);
	t->size = t->requested >= 0 ? (size_t)t->requested : w->record_size > 0 ? w->record_size : t->cap;
	if (t->size > t->cap) {
		dh_writer_abort(w->w);
		t->state = 2;
		return raise_rc(-DH_ETOOBIG, w->name);
	}
	t->state = 1;
	w->txn = t;
	{
		PyObject *mv = PyMemoryView_FromObject((PyObject *)t);

		if (mv == NULL || (t->view = PyWeakref_NewRef(mv, NULL)) == NULL) {
			Py_XDECREF(mv);
			dh_writer_abort(w->w);
			t->state = 2;
			w->txn = NULL;
			return NULL;
		}
		return mv;
	}
}

/* Release the view handed out; 0 if no view of the slot is left. */
static int
txn_release_view(TxnObject *t)
{
	release_view(&t->view);
	return t->exports == 0 ? 0 : -1;
}

static void
txn_abort1(TxnObject *t)
{
	WriterObject *w = t->writer;

	if (t->state == 1 && w->w != NULL && !w->closed)
		dh_writer_abort(w->w);
	t->state = 2;
	if (w->txn == t)
		w->txn = NULL;
}

PyDoc_STRVAR(txn_commit_doc,
"commit(n=None)\n--\n\n"
"Publish the first n bytes (default: the reserved size) now; leaving the\n"
"with block then does nothing more.");

static PyObject *
txn_commit(TxnObject *t, PyObject *args)
{
	Py_ssize_t n = -1;
	WriterObject *w = t->writer;
	int rc;

	if (!PyArg_ParseTuple(args, "|n:commit", &n))
		return NULL;
	if (t->state != 1) {
		PyErr_SetString(PyExc_RuntimeError, "the transaction is not open");
		return NULL;
	}
	if (w->closed || w->w == NULL) {
		t->state = 2;
		PyErr_SetString(PyExc_ValueError, "the Writer was closed: the reservation was aborted");
		return NULL;
	}
	if (n < 0)
		n = (Py_ssize_t)t->size;
	if (txn_release_view(t) < 0) {
		txn_abort1(t);
		PyErr_SetString(PyExc_BufferError,
				"a view of the reserved slot outlives the transaction: aborted, nothing published "
				"(delete derived views and arrays before leaving the block)");
		return NULL;
	}
	if ((size_t)n > t->cap) {
		txn_abort1(t);
		return raise_rc(-DH_ETOOBIG, w->name);
	}
	rc = dh_writer_commit(w->w, (size_t)n);
	if (rc < 0) {
		txn_abort1(t);
		return raise_rc(rc, w->name);
	}
	t->state = 2;
	w->txn = NULL;
	Py_RETURN_NONE;
}

PyDoc_STRVAR(txn_abort_doc, "abort()\n--\n\nDrop the reservation: nothing becomes visible.");

static PyObject *
txn_abort(TxnObject *t, PyObject *Py_UNUSED(ignored))
{
	if (t->state == 1) {
		(void)txn_release_view(t);
		txn_abort1(t);
	}
	Py_RETURN_NONE;
}

static PyObject *
txn_exit(TxnObject *t, PyObject *args)
{
	PyObject *type = Py_None, *value = Py_None, *tb = Py_None;

	if (!PyArg_UnpackTuple(args, "__exit__", 0, 3, &type, &value, &tb))
		return NULL;
	if (t->state != 1)
		Py_RETURN_FALSE;
	if (type != Py_None) {
		(void)txn_release_view(t);
		txn_abort1(t);
		Py_RETURN_FALSE;
	}
	{
		PyObject *noargs = PyTuple_New(0), *r;

		if (noargs == NULL)
			return NULL;
		r = txn_commit(t, noargs);
		Py_DECREF(noargs);
		if (r == NULL)
			return NULL;
		Py_DECREF(r);
	}
	Py_RETURN_FALSE;
}

static void
txn_dealloc(TxnObject *t)
{
	/* entered and dropped without leaving the block: never publish it */
	if (t->state == 1)
		txn_abort1(t);
	Py_CLEAR(t->view);
	if (t->writer->txn == t)
		t->writer->txn = NULL;
	Py_DECREF(t->writer);
	PyObject_Free(t);
}

static PyObject *
txn_repr(TxnObject *t)
{
	static const char *states[] = { "new", "open", "done" };

	return PyUnicode_FromFormat("<dh.Transaction %s %s size=%zu>", t->writer->name ? t->writer->name : "?",
				    states[t->state], t->size);
}

static PyObject *
txn_get_capacity(TxnObject *t, void *c)
{
	(void)c;
	return PyLong_FromSize_t(t->cap);
}

static PyGetSetDef txn_getset[] = {
	{ "capacity", (getter)txn_get_capacity, NULL, "Bytes the reserved slot can hold (0 before entering).",
	  NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

static PyMethodDef txn_methods[] = {
	{ "commit", (PyCFunction)txn_commit, METH_VARARGS, txn_commit_doc },
	{ "abort", (PyCFunction)txn_abort, METH_NOARGS, txn_abort_doc },
	{ "__enter__", (PyCFunction)txn_enter, METH_NOARGS, "Reserve the slot; return a writable memoryview of it." },
	{ "__exit__", (PyCFunction)txn_exit, METH_VARARGS, "Commit (clean exit) or abort (exception)." },
	{ NULL, NULL, 0, NULL }
};

static PyTypeObject TxnType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "dh._dh.Transaction",
	.tp_basicsize = sizeof(TxnObject),
	.tp_dealloc = (destructor)txn_dealloc,
	.tp_repr = (reprfunc)txn_repr,
	.tp_as_buffer = &txn_as_buffer,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A reservation of the next slot (Writer.reserve): a context manager.",
	.tp_methods = txn_methods,
	.tp_getset = txn_getset,
};

/* ---- module functions -------------------------------------------------------- */

PyDoc_STRVAR(create_doc,
"_create(name, slots, slot_size, policy, checksum, schema, key, meta_size,\n"
"        max_readers, mode, evict_after_ns)\n--\n\nSee dh.create.");

static PyObject *
mod_create(PyObject *m, PyObject *args)
{
	char names[128];
	const char *name, *policy, *checksum, *schema;
	unsigned int slots, slot_size, meta_size, max_readers, mode;
	unsigned long long evict;
	PyObject *key;
	struct dh_config cfg;
	uint8_t k[DH_KEY_BYTES];
	int has_key, rc;

	(void)m;
	if (!PyArg_ParseTuple(args, "sIIszzOIIIK:_create", &name, &slots, &slot_size, &policy, &checksum, &schema,
			      &key, &meta_size, &max_readers, &mode, &evict))
		return NULL;
	if (name_arg(name) < 0)
		return NULL;
	dh_config_init(&cfg);
	cfg.slots = slots;
	cfg.slot_size = slot_size;
	cfg.meta_size = meta_size;
	cfg.max_readers = max_readers;
	cfg.mode = mode;
	cfg.evict_after_ns = evict;
	cfg.schema = schema;
	if (dh_policy_parse(policy, &cfg.policy) < 0)
		return PyErr_Format(PyExc_ValueError, "policy must be one of %s, not %s",
				    dh_policy_names(", ", names, sizeof names), policy);
	if (checksum != NULL && dh_checksum_parse(checksum, &cfg.checksum) < 0)
		return PyErr_Format(PyExc_ValueError, "checksum must be one of %s, not %s",
				    dh_checksum_names(", ", names, sizeof names), checksum);
	if (key_arg(key, k, &has_key, name) < 0)
		return NULL;
	if (has_key)
		cfg.key = k;
	rc = dh_block_create(name, &cfg);
	dh_key_wipe(k);
	if (rc < 0)
		return raise_rc(rc, name);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(remove_doc,
"remove(name, force=False)\n--\n\n"
"Remove channel name. Unless force, ChannelBusy (holder: a pid) while a\n"
"participant is alive; ChannelNotFound if it does not exist.");

static PyObject *
mod_remove(PyObject *m, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", "force", NULL };
	const char *name;
	int force = 0, rc;
	pid_t holder = 0;

	(void)m;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|p:remove", kwlist, &name, &force))
		return NULL;
	if (name_arg(name) < 0)
		return NULL;
	rc = dh_block_unlink(name, force, &holder);
	if (rc < 0) {
		raise_rc(rc, name);
		if (rc == -EBUSY) {
			PyObject *t, *v, *tb, *p;
			PyErr_Fetch(&t, &v, &tb);
			PyErr_NormalizeException(&t, &v, &tb);
			if (v != NULL && (p = PyLong_FromLong(holder)) != NULL) {
				PyObject_SetAttrString(v, "holder", p);
				Py_DECREF(p);
			}
			PyErr_Restore(t, v, tb);
		}
		return NULL;
	}
	Py_RETURN_NONE;
}

PyDoc_STRVAR(keygen_doc,
"keygen(path)\n--\n\nCreate a new MAC key file (mode 0600, refused if it exists).");

static PyObject *
mod_keygen(PyObject *m, PyObject *arg)
{
	PyObject *path = NULL;
	int rc;

	(void)m;
	if (!PyUnicode_FSConverter(arg, &path))
		return NULL;
	rc = dh_key_generate(PyBytes_AS_STRING(path));
	if (rc < 0) {
		raise_rc(rc, PyBytes_AS_STRING(path));
		Py_DECREF(path);
		return NULL;
	}
	Py_DECREF(path);
	Py_RETURN_NONE;
}

PyDoc_STRVAR(strerror_doc, "strerror(code)\n--\n\nlibdh's message for an error code (either sign).");

static PyObject *
mod_strerror(PyObject *m, PyObject *arg)
{
	long c = PyLong_AsLong(arg);

	(void)m;
	if (c == -1 && PyErr_Occurred())
		return NULL;
	return PyUnicode_FromString(dh_strerror(c > 0 ? -(int)c : (int)c));
}

PyDoc_STRVAR(schema_doc,
"schema_info(spec) -> dict\n--\n\n"
"Parse a schema SPEC: canonical, size, hash (hex), packed, and fields, a\n"
"list of (name, type, count, offset, size, is_array) with pads included\n"
"(type 'pad'). ValueError (with .offset) for a bad spec.");

static PyObject *
mod_schema_info(PyObject *m, PyObject *arg)
{
	struct dh_schema *s;
	const char *spec;
	char hex[65];
	PyObject *fields, *out = NULL;
	int rc;

	(void)m;
	if ((spec = PyUnicode_AsUTF8(arg)) == NULL)
		return NULL;
	if ((s = malloc(sizeof *s)) == NULL)
		return PyErr_NoMemory();
	rc = dh_schema_parse(spec, s);
	if (rc < 0) {
		PyObject *e;
		if (rc == -EINVAL || rc == -E2BIG) {
			e = PyObject_CallFunction(PyExc_ValueError, "N",
						  PyUnicode_FromFormat("schema: %s at byte %u of the spec",
								       rc == -E2BIG ? "too large" : "syntax error",
								       s->error_at));
			if (e != NULL) {
				PyObject *o = PyLong_FromUnsignedLong(s->error_at);
				if (o != NULL) {
					PyObject_SetAttrString(e, "offset", o);
					Py_DECREF(o);
				}
				PyErr_SetObject(PyExc_ValueError, e);
				Py_DECREF(e);
			}
		} else {
			raise_rc(rc, NULL);
		}
		free(s);
		return NULL;
	}
	if ((fields = PyList_New(s->nfields)) == NULL)
		goto done;
	for (uint32_t i = 0; i < s->nfields; i++) {
		const struct dh_schema_field *f = &s->fields[i];
		PyObject *t = Py_BuildValue("(ssIIIO)", f->name, dh_schema_type_name(f->type), f->count, f->offset,
					    f->size, s->is_array[i] ? Py_True : Py_False);
		if (t == NULL) {
			Py_DECREF(fields);
			goto done;
		}
		PyList_SET_ITEM(fields, i, t);
	}
	dh_schema_hash_hex(s->hash, hex);
	out = Py_BuildValue("{s:s,s:I,s:s,s:O,s:N}", "canonical", s->canonical, "size", s->size, "hash", hex,
			    "packed", s->packed ? Py_True : Py_False, "fields", fields);
done:
	free(s);
	return out;
}

/* stat: the JSON document dh-stat --json prints. */
struct chan {
	char *name;
	struct dh_snapshot *snap;
	char *schema;
	int error;
};

static int
take(struct chan *c)
{
	char schema[DH_SCHEMA_MAX];
	struct dh_block *b;
	int rc;

	if (dh_name_check(c->name) < 0)
		return c->error = -DH_EFOREIGN;
	if ((c->snap = malloc(sizeof *c->snap)) == NULL)
		return c->error = -ENOMEM;
	if ((rc = dh_block_open(c->name, DH_OPEN_RDONLY | DH_OPEN_NOWAIT, &b)) == 0) {
		schema[0] = '\0';
		rc = dh_block_snapshot(b, c->snap);
		if (rc == 0 && c->snap->record_size > 0) {
			dh_block_schema(b, schema, sizeof schema, NULL);
			if ((c->schema = strdup(schema)) == NULL)
				rc = -ENOMEM;
		}
		dh_block_close(b);
	}
	return c->error = rc;
}

/*
 * A segment truncated while mapped (another process's doing: a hostile or
 * broken peer) raises SIGBUS on access.  dh.stat() opens every channel in
 * /dev/shm, strangers' included, so it must not die of one: each snapshot
 * runs with a SIGBUS handler that jumps back out of it (the channel then
 * reports "corrupt segment"; its mapping is leaked, never touched again).
 * The handler is installed for the duration of the pass and the previous
 * one (faulthandler's, say) restored after; a SIGBUS on any other thread
 * restores the previous handler and returns, so the fault repeats there.
 */
static _Thread_local sigjmp_buf *bus_env;
static struct sigaction bus_prev;

static void
on_bus(int sig)
{
	sigjmp_buf *e = bus_env;

	if (e != NULL) {
		bus_env = NULL;
		siglongjmp(*e, 1);
	}
	sigaction(sig, &bus_prev, NULL);
}

static void
take_guarded(struct chan *c)
{
	sigjmp_buf env;

	if (sigsetjmp(env, 1) == 0) {
		bus_env = &env;
		take(c);
	} else {
		c->error = -DH_ECORRUPT;
	}
	bus_env = NULL;
}

PyDoc_STRVAR(stat_doc,
"_stat_json(names=None, all=False) -> str\n--\n\n"
"The JSON document dh-stat --json prints for names (None: every channel).");

static PyObject *
mod_stat_json(PyObject *m, PyObject *args)
{
	PyObject *names = Py_None, *out = NULL;
	int all = 0, rc = 0;
	struct chan *c = NULL;
	struct dh_stat_channel *sc = NULL;
	size_t n = 0, cap = 0;
	char *doc = NULL;
	struct timespec ts;

	(void)m;
	if (!PyArg_ParseTuple(args, "|Op:_stat_json", &names, &all))
		return NULL;
	if (names == Py_None) {
		/* libdh's listing: the channel directory (DH_SHM_DIR), regular
		 * files only, sorted, none of them opened */
		char **list = NULL;

		if ((rc = dh_channel_list(&list, &cap)) == 0 && (c = calloc(cap ? cap : 1, sizeof *c)) == NULL)
			rc = -ENOMEM;
		for (size_t i = 0; rc == 0 && i < cap; i++) {
			c[n].name = list[i];
			list[i] = NULL;
			n++;
		}
		dh_channel_list_free(list);
	} else {
		PyObject *seq = PySequence_Fast(names, "names must be a sequence of channel names");
		if (seq == NULL)
			return NULL;
		cap = (size_t)PySequence_Fast_GET_SIZE(seq);
		c = calloc(cap ? cap : 1, sizeof *c);
		for (size_t i = 0; c != NULL && i < cap; i++) {
			const char *s = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)i));
			if (s == NULL) {
				Py_DECREF(seq);
				goto out;
			}
			if ((c[n].name = strdup(s)) == NULL) {
				rc = -ENOMEM;
				break;
			}
			n++;
		}
		Py_DECREF(seq);
		if (c == NULL)
			rc = -ENOMEM;
	}
	if (rc < 0)
		goto out;
	if ((sc = calloc(n ? n : 1, sizeof *sc)) == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* the GIL stays held while the handler is ours: no other guarded
	 * pass can swap handlers underneath */
	{
		struct sigaction sa;

		memset(&sa, 0, sizeof sa);
		sa.sa_handler = on_bus;
		sigemptyset(&sa.sa_mask);
		sigaction(SIGBUS, &sa, &bus_prev);
	}
	for (size_t i = 0; i < n; i++) {
		take_guarded(&c[i]);
		sc[i].name = c[i].name;
		sc[i].error = c[i].error;
		sc[i].snap = c[i].snap;
		sc[i].schema = c[i].schema;
	}
	sigaction(SIGBUS, &bus_prev, NULL);
	Py_BEGIN_ALLOW_THREADS
	clock_gettime(CLOCK_REALTIME, &ts);
	rc = dh_stat_json(sc, n, (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec, all ? DH_STAT_ALL : 0,
			  &doc);
	Py_END_ALLOW_THREADS
	if (rc == 0)
		out = PyUnicode_FromString(doc);
	free(doc);
out:
	if (rc < 0 && !PyErr_Occurred())
		raise_rc(rc, NULL);
	for (size_t i = 0; c != NULL && i < n; i++) {
		free(c[i].name);
		free(c[i].snap);
		free(c[i].schema);
	}
	free(c);
	free(sc);
	return out;
}

static int
is_problem(enum dh_finding_action a)
{
	return a == DH_ACT_REPAIRABLE || a == DH_ACT_NEEDS_FORCE || a == DH_ACT_UNREPAIRABLE;
}

static PyObject *
opt_u64(uint64_t v, uint64_t none)
{
	if (v == none)
		Py_RETURN_NONE;
	return PyLong_FromUnsignedLongLong(v);
}

PyDoc_STRVAR(check_doc,
"check(name, repair=False, force=False, key=None, stall=10.0) -> dict\n--\n\n"
"What dh-validate --json reports for channel name: channel, status ('valid',\n"
"'repaired', 'problems'), checked (messages whose checksum was verified),\n"
"problems, repaired, forced and findings (kind, action, problem, index,\n"
"pid, seq, slot, age_ns, detail). repair: reclaim what dead processes held\n"
"(provably safe only); force: also cut loose live participants stalled for\n"
"stall seconds. key: verify the MACs of a keyed channel.");

static PyObject *
mod_check(PyObject *m, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "name", "repair", "force", "key", "stall", NULL };
	const char *name;
	int repair = 0, force = 0, has_key = 0, rc, repaired = 0, forced = 0;
	PyObject *key = NULL, *findings, *out = NULL;
	double stall = 10.0;
	uint8_t k[DH_KEY_BYTES];
	struct dh_block *b;
	struct dh_report rep;
	const char *status = "valid";

	(void)m;
	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|ppOd:check", kwlist, &name, &repair, &force, &key, &stall))
		return NULL;
	if (name_arg(name) < 0 || key_arg(key, k, &has_key, name) < 0)
		return NULL;
	if (!(stall >= 0)) {
		PyErr_SetString(PyExc_ValueError, "stall must be >= 0 seconds");
		return NULL;
	}
	memset(&rep, 0, sizeof rep);
	Py_BEGIN_ALLOW_THREADS
	rc = dh_block_open(name, repair ? 0 : DH_OPEN_RDONLY, &b);
	if (rc == 0 && has_key && (rc = dh_block_set_key(b, k)) < 0)
		dh_block_close(b);
	if (rc == 0) {
		rc = dh_check_run(b, repair ? DH_CHECK_REPAIR | (force ? DH_CHECK_FORCE : 0) : 0,
				  (uint64_t)(stall * 1e9), &rep);
		dh_block_close(b);
	}
	Py_END_ALLOW_THREADS
	dh_key_wipe(k);
	if (rc < 0) {
		dh_report_free(&rep);
		return raise_rc(rc, name);
	}
	if ((findings = PyList_New(0)) == NULL)
		goto done;
	for (size_t i = 0; i < rep.n; i++) {
		const struct dh_finding *f = &rep.f[i];
		PyObject *d;

		repaired += f->action == DH_ACT_REPAIRED;
		forced += f->action == DH_ACT_FORCED;
		if (f->action == DH_ACT_REPAIRED || f->action == DH_ACT_FORCED)
			status = "repaired";
		d = Py_BuildValue("{s:s,s:s,s:O,s:N,s:N,s:N,s:N,s:K,s:s}", "kind", dh_finding_name(f->kind), "action",
				  dh_action_name(f->action), "problem", is_problem(f->action) ? Py_True : Py_False,
				  "index", f->index < 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLong(f->index),
				  "pid", f->pid <= 0 ? (Py_INCREF(Py_None), Py_None) : PyLong_FromLong(f->pid), "seq",
				  opt_u64(f->seq, UINT64_MAX), "slot", opt_u64(f->slot, UINT32_MAX), "age_ns",
				  (unsigned long long)f->age_ns, "detail", f->detail);
		if (d == NULL || PyList_Append(findings, d) < 0) {
			Py_XDECREF(d);
			Py_DECREF(findings);
			goto done;
		}
		Py_DECREF(d);
	}
	if (rep.problems)
		status = "problems";
	out = Py_BuildValue("{s:s,s:s,s:K,s:i,s:i,s:i,s:N}", "channel", name, "status", status, "checked",
			    (unsigned long long)rep.slots_checked, "problems", rep.problems, "repaired", repaired,
			    "forced", forced, "findings", findings);
done:
	dh_report_free(&rep);
	return out;
}

PyDoc_STRVAR(waiters_doc,
"_waiters(name) -> (data_waiters, space_waiters)\n--\n\n"
"Readers asleep waiting for data, and 1 while the writer sleeps waiting\n"
"for space, now (for tests that must know a participant is blocked).");

static PyObject *
mod_waiters(PyObject *m, PyObject *arg)
{
	struct dh_snapshot *s;
	struct dh_block *b;
	const char *name;
	PyObject *out;
	int rc;

	(void)m;
	if ((name = PyUnicode_AsUTF8(arg)) == NULL || name_arg(name) < 0)
		return NULL;
	if ((s = malloc(sizeof *s)) == NULL)
		return PyErr_NoMemory();
	if ((rc = dh_block_open(name, DH_OPEN_RDONLY, &b)) == 0) {
		rc = dh_block_snapshot(b, s);
		dh_block_close(b);
	}
	out = rc < 0 ? raise_rc(rc, name) : Py_BuildValue("(II)", s->data_waiters, s->space_waiters);
	free(s);
	return out;
}

PyDoc_STRVAR(register_doc, "_register_errors(base, mapping)\n--\n\nInstall the exception classes (dh/__init__.py).");

static PyObject *
mod_register_errors(PyObject *m, PyObject *args)
{
	PyObject *base, *map;

	(void)m;
	if (!PyArg_ParseTuple(args, "OO!:_register_errors", &base, &PyDict_Type, &map))
		return NULL;
	Py_INCREF(base);
	Py_XSETREF(error_base, base);
	Py_INCREF(map);
	Py_XSETREF(error_map, map);
	Py_RETURN_NONE;
}

/* ---- Broker client ------------------------------------------------------------- */

typedef struct {
	PyObject_HEAD
	struct dh_broker_client *c;
	char *endpoint, *server_key, *client_key;
	int64_t timeout_ns;
	int busy;
	pid_t pid;
} BrokerObject;

typedef struct {
	PyObject_HEAD
	struct dh_broker_events *e;
	int64_t timeout_ns;
	int busy;
	pid_t pid;
} EventsObject;

static PyTypeObject BrokerType, EventsType;

static char *
opt_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

static void
broker_opts(BrokerObject *b, struct dh_broker_opts *o)
{
	memset(o, 0, sizeof *o);
	o->endpoint = b->endpoint;
	o->server_key = b->server_key;
	o->client_key = b->client_key;
	o->timeout_ns = b->timeout_ns;
}

static PyObject *
broker_raise(BrokerObject *b, int rc)
{
	const char *msg = b->c != NULL ? dh_broker_errmsg(b->c) : "";

	if (raise_rc(rc, b->endpoint) == NULL && msg[0] != '\0') {
		PyObject *t, *v, *tb, *s;
		PyErr_Fetch(&t, &v, &tb);
		PyErr_NormalizeException(&t, &v, &tb);
		if (v != NULL && (s = PyUnicode_FromString(msg)) != NULL) {
			PyObject_SetAttrString(v, "detail", s);
			Py_DECREF(s);
		}
		PyErr_Restore(t, v, tb);
	}
	return NULL;
}

static int
broker_init(BrokerObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "endpoint", "broker_key", "client_key", "timeout", NULL };
	const char *endpoint = NULL;
	PyObject *bk = Py_None, *ck = Py_None, *bkb = NULL, *ckb = NULL, *timeout = NULL;
	struct dh_broker_opts o;
	char envbuf[4096], defbuf[512];
	int rc;
	int64_t t;

	if (self->c != NULL) {
		PyErr_SetString(PyExc_RuntimeError, "Broker already initialised");
		return -1;
	}
	if (!PyArg_ParseTupleAndKeywords(args, kw, "|z$OOO:Broker", kwlist, &endpoint, &bk, &ck, &timeout))
		return -1;
	if (timeout_arg(timeout, &t) < 0)
		return -1;
	if ((bk != Py_None && !PyUnicode_FSConverter(bk, &bkb)) || (ck != Py_None && !PyUnicode_FSConverter(ck, &ckb))) {
		Py_XDECREF(bkb);
		return -1;
	}
	memset(&o, 0, sizeof o);
	o.endpoint = endpoint;
	o.server_key = bkb ? PyBytes_AS_STRING(bkb) : NULL;
	o.client_key = ckb ? PyBytes_AS_STRING(ckb) : NULL;
	o.timeout_ns = t > 0 ? t : 0;
	rc = dh_broker_opts_env(&o, envbuf, sizeof envbuf);
	if (rc >= 0 && o.endpoint == NULL)
		o.endpoint = dh_broker_default_endpoint(defbuf, sizeof defbuf);
	self->endpoint = opt_strdup(o.endpoint);
	self->server_key = opt_strdup(o.server_key);
	self->client_key = opt_strdup(o.client_key);
	self->timeout_ns = o.timeout_ns;
	Py_XDECREF(bkb);
	Py_XDECREF(ckb);
	if (rc < 0) {
		raise_rc(rc, NULL);
		return -1;
	}
	broker_opts(self, &o);
	rc = dh_broker_connect(&o, &self->c);
	if (rc < 0) {
		self->c = NULL;
		raise_rc(rc, self->endpoint);
		return -1;
	}
	self->pid = getpid();
	return 0;
}

static void
broker_dealloc(BrokerObject *self)
{
	if (self->c != NULL && self->pid == getpid())
		dh_broker_disconnect(self->c);
	free(self->endpoint);
	free(self->server_key);
	free(self->client_key);
	Py_TYPE(self)->tp_free((PyObject *)self);
}

static int
broker_usable(BrokerObject *self)
{
	if (self->c == NULL) {
		PyErr_SetString(PyExc_ValueError, "operation on a closed Broker");
		return -1;
	}
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "Broker is in use by another thread");
		return -1;
	}
	return 0;
}

PyDoc_STRVAR(broker_request_doc,
"request(json) -> str\n--\n\nSend one raw request (a JSON object) and return the raw reply.");

static PyObject *
broker_request(BrokerObject *self, PyObject *arg)
{
	const char *req;
	char *reply = NULL;
	PyObject *out;
	int rc;

	if (broker_usable(self) < 0 || (req = PyUnicode_AsUTF8(arg)) == NULL)
		return NULL;
	self->busy = 1;
	Py_BEGIN_ALLOW_THREADS
	rc = dh_broker_request(self->c, req, &reply);
	Py_END_ALLOW_THREADS
	self->busy = 0;
	if (rc < 0)
		return broker_raise(self, rc);
	out = PyUnicode_FromString(reply);
	free(reply);
	return out;
}

PyDoc_STRVAR(broker_list_doc,
"_list(channel=None) -> str\n--\n\nThe reply's channels array as JSON text.");

static PyObject *
broker_list(BrokerObject *self, PyObject *args)
{
	const char *channel = NULL;
	struct dh_broker_info *info = NULL;
	size_t n = 0;
	char *json = NULL;
	PyObject *out;
	int rc;

	if (!PyArg_ParseTuple(args, "|z:_list", &channel) || broker_usable(self) < 0)
		return NULL;
	self->busy = 1;
	Py_BEGIN_ALLOW_THREADS
	rc = dh_broker_list(self->c, channel, &info, &n, &json);
	Py_END_ALLOW_THREADS
	self->busy = 0;
	free(info);
	if (rc < 0) {
		free(json);
		return broker_raise(self, rc);
	}
	out = PyUnicode_FromString(json ? json : "[]");
	free(json);
	return out;
}

static PyObject *
info_dict(const struct dh_broker_info *i)
{
	char hex[65];

	if (i->has_schema)
		dh_schema_hash_hex(i->schema_hash, hex);
	return Py_BuildValue("{s:s,s:s,s:O,s:i,s:s,s:s,s:I,s:I,s:I,s:s,s:s,s:O,s:L,s:L,s:I}", "channel", i->channel,
			     "host", i->host, "stale", i->stale ? Py_True : Py_False, "pid", (int)i->pid, "label",
			     i->label, "policy", dh_policy_name(i->policy), "slots", i->slots, "slot_size",
			     i->slot_size, "max_readers", i->max_readers, "checksum", dh_checksum_name(i->checksum),
			     "schema_hash", i->has_schema ? hex : "", "keyed", i->keyed ? Py_True : Py_False, "age_ms",
			     (long long)i->age_ms, "since_ms", (long long)i->since_ms, "readers", i->readers);
}

PyDoc_STRVAR(broker_discover_doc,
"discover(channel, host=None, timeout=0) -> dict\n--\n\n"
"Where channel is registered (a live registration preferred). With a\n"
"timeout (seconds, None: forever), wait for a live registration to appear\n"
"(Timeout if none does); ChannelNotFound if not registered and timeout is 0.");

static PyObject *
broker_discover(BrokerObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "channel", "host", "timeout", NULL };
	const char *channel, *host = NULL;
	PyObject *timeout = NULL;
	struct dh_broker_info info;
	int64_t t = 0, deadline = 0;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "s|zO:discover", kwlist, &channel, &host, &timeout))
		return NULL;
	if (broker_usable(self) < 0)
		return NULL;
	if (timeout != NULL && timeout_arg(timeout, &t) < 0)
		return NULL;
	if (t == 0) {
		self->busy = 1;
		Py_BEGIN_ALLOW_THREADS
		rc = dh_broker_discover(self->c, channel, host, &info);
		Py_END_ALLOW_THREADS
		self->busy = 0;
		if (rc < 0)
			return broker_raise(self, rc);
		return info_dict(&info);
	}
	if (t > 0)
		deadline = now_mono() + t;
	for (;;) {
		int64_t slice = 4 * SLICE_NS;

		if (t > 0) {
			int64_t rem = deadline - now_mono();
			if (rem <= 0)
				return raise_rc(-ETIMEDOUT, channel);
			if (rem < slice)
				slice = rem;
		}
		self->busy = 1;
		Py_BEGIN_ALLOW_THREADS
		rc = dh_broker_wait_channel(self->c, channel, host, slice, &info);
		Py_END_ALLOW_THREADS
		self->busy = 0;
		if (rc == 0)
			return info_dict(&info);
		if (rc != -ETIMEDOUT && rc != -EINTR)
			return broker_raise(self, rc);
		if (PyErr_CheckSignals() < 0)
			return NULL;
	}
}

PyDoc_STRVAR(broker_ping_doc, "ping() -> dict\n--\n\nprotocol, version, heartbeat_ns, stale_ns, expire_ns, events.");

static PyObject *
broker_ping(BrokerObject *self, PyObject *Py_UNUSED(ignored))
{
	struct dh_broker_pong p;
	int rc;

	if (broker_usable(self) < 0)
		return NULL;
	self->busy = 1;
	Py_BEGIN_ALLOW_THREADS
	rc = dh_broker_ping(self->c, &p);
	Py_END_ALLOW_THREADS
	self->busy = 0;
	if (rc < 0)
		return broker_raise(self, rc);
	return Py_BuildValue("{s:i,s:s,s:L,s:L,s:L,s:s}", "protocol", p.protocol, "version", p.version,
			     "heartbeat_ns", (long long)p.heartbeat_ns, "stale_ns", (long long)p.stale_ns,
			     "expire_ns", (long long)p.expire_ns, "events", p.events);
}

PyDoc_STRVAR(broker_events_doc,
"events(timeout=None) -> Events\n--\n\n"
"Subscribe to the broker's event stream: an iterator of events (dicts);\n"
"each wait is bounded by timeout seconds (Timeout), None: forever.");

static PyObject *
broker_events(BrokerObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = NULL;
	char ep[1024];
	struct dh_broker_opts o;
	EventsObject *e;
	int64_t t;
	int rc;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:events", kwlist, &timeout) || broker_usable(self) < 0 ||
	    timeout_arg(timeout, &t) < 0)
		return NULL;
	self->busy = 1;
	Py_BEGIN_ALLOW_THREADS
	rc = dh_broker_events_endpoint(self->c, ep, sizeof ep);
	Py_END_ALLOW_THREADS
	self->busy = 0;
	if (rc < 0)
		return broker_raise(self, rc);
	if ((e = PyObject_New(EventsObject, &EventsType)) == NULL)
		return NULL;
	e->e = NULL;
	e->timeout_ns = t;
	e->busy = 0;
	e->pid = getpid();
	broker_opts(self, &o);
	o.endpoint = ep;
	rc = dh_broker_events_open(&o, &e->e);
	if (rc < 0) {
		e->e = NULL;
		Py_DECREF(e);
		return raise_rc(rc, ep);
	}
	return (PyObject *)e;
}

static PyObject *
broker_close(BrokerObject *self, PyObject *Py_UNUSED(ignored))
{
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "Broker is in use by another thread");
		return NULL;
	}
	if (self->c != NULL && self->pid == getpid())
		dh_broker_disconnect(self->c);
	self->c = NULL;
	Py_RETURN_NONE;
}

static PyObject *
broker_enter(PyObject *self, PyObject *Py_UNUSED(ignored))
{
	Py_INCREF(self);
	return self;
}

static PyObject *
broker_exit(BrokerObject *self, PyObject *args)
{
	(void)args;
	return broker_close(self, NULL);
}

static PyObject *
broker_repr(BrokerObject *self)
{
	return PyUnicode_FromFormat("<dh.Broker %s%s%s>", self->endpoint ? self->endpoint : "?",
				    self->server_key ? " curve" : "", self->c ? "" : " closed");
}

static PyObject *
broker_get_endpoint(BrokerObject *self, void *c)
{
	(void)c;
	return PyUnicode_FromString(self->endpoint ? self->endpoint : "");
}

static PyMethodDef broker_methods[] = {
	{ "ping", (PyCFunction)broker_ping, METH_NOARGS, broker_ping_doc },
	{ "_list", (PyCFunction)broker_list, METH_VARARGS, broker_list_doc },
	{ "discover", (PyCFunction)(void (*)(void))broker_discover, METH_VARARGS | METH_KEYWORDS,
	  broker_discover_doc },
	{ "events", (PyCFunction)(void (*)(void))broker_events, METH_VARARGS | METH_KEYWORDS, broker_events_doc },
	{ "request", (PyCFunction)broker_request, METH_O, broker_request_doc },
	{ "close", (PyCFunction)broker_close, METH_NOARGS, "Disconnect. Idempotent." },
	{ "__enter__", (PyCFunction)broker_enter, METH_NOARGS, "Return self." },
	{ "__exit__", (PyCFunction)broker_exit, METH_VARARGS, "Disconnect." },
	{ NULL, NULL, 0, NULL }
};

static PyGetSetDef broker_getset[] = {
	{ "endpoint", (getter)broker_get_endpoint, NULL, "The request endpoint.", NULL },
	{ NULL, NULL, NULL, NULL, NULL }
};

PyDoc_STRVAR(broker_doc,
"Broker(endpoint=None, *, broker_key=None, client_key=None, timeout=None)\n--\n\n"
"A client of dh-broker(1). endpoint: None for $DH_BROKER or the default\n"
"ipc socket. broker_key/client_key: CURVE key files (the broker's public\n"
"key, our secret key; default from $DH_CURVE_DIR). timeout: per request,\n"
"seconds (None: 2 s). No request is sent until a method is called.");

static PyTypeObject BrokerType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "dh._dh.Broker",
	.tp_basicsize = sizeof(BrokerObject),
	.tp_dealloc = (destructor)broker_dealloc,
	.tp_repr = (reprfunc)broker_repr,
	.tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
	.tp_doc = broker_doc,
	.tp_methods = broker_methods,
	.tp_getset = broker_getset,
	.tp_init = (initproc)broker_init,
	.tp_new = PyType_GenericNew,
};

static PyObject *
events_next_raw(EventsObject *self, int64_t t)
{
	int64_t deadline = 0;
	char *json = NULL;
	ssize_t n;
	PyObject *out;

	if (self->e == NULL) {
		PyErr_SetString(PyExc_ValueError, "operation on closed Events");
		return NULL;
	}
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "Events is in use by another thread");
		return NULL;
	}
	if (t > 0)
		deadline = now_mono() + t;
	for (;;) {
		int64_t slice = SLICE_NS;

		if (t == 0)
			slice = 0;
		else if (t > 0) {
			int64_t rem = deadline - now_mono();
			if (rem < 0)
				rem = 0;
			if (rem < slice)
				slice = rem;
		}
		self->busy = 1;
		Py_BEGIN_ALLOW_THREADS
		n = dh_broker_events_next(self->e, &json, slice);
		Py_END_ALLOW_THREADS
		self->busy = 0;
		if (n >= 0)
			break;
		if (n != -ETIMEDOUT && n != -EINTR && n != -EAGAIN)
			return raise_rc((int)n, NULL);
		if (PyErr_CheckSignals() < 0)
			return NULL;
		if (t == 0 || (t > 0 && now_mono() >= deadline))
			return raise_rc(-ETIMEDOUT, NULL);
	}
	out = PyUnicode_FromStringAndSize(json, n);
	free(json);
	return out;
}

static PyObject *
events_next(EventsObject *self, PyObject *args, PyObject *kw)
{
	static char *kwlist[] = { "timeout", NULL };
	PyObject *timeout = NULL;
	int64_t t = self->timeout_ns;

	if (!PyArg_ParseTupleAndKeywords(args, kw, "|O:next_json", kwlist, &timeout))
		return NULL;
	if (timeout != NULL && timeout_arg(timeout, &t) < 0)
		return NULL;
	return events_next_raw(self, t);
}

static PyObject *
events_close(EventsObject *self, PyObject *Py_UNUSED(ignored))
{
	if (self->busy) {
		PyErr_SetString(PyExc_RuntimeError, "Events is in use by another thread");
		return NULL;
	}
	if (self->e != NULL && self->pid == getpid())
		dh_broker_events_close(self->e);
	self->e = NULL;
	Py_RETURN_NONE;
}

static void
events_dealloc(EventsObject *self)
{
	if (self->e != NULL && self->pid == getpid())
		dh_broker_events_close(self->e);
	PyObject_Free(self);
}

static PyMethodDef events_methods[] = {
	{ "next_json", (PyCFunction)(void (*)(void))events_next, METH_VARARGS | METH_KEYWORDS,
	  "next_json(timeout=<the stream's>) -> str\n--\n\nThe next event as JSON text." },
	{ "close", (PyCFunction)events_close, METH_NOARGS, "Unsubscribe. Idempotent." },
	{ NULL, NULL, 0, NULL }
};

static PyTypeObject EventsType = {
	PyVarObject_HEAD_INIT(NULL, 0)
	.tp_name = "dh._dh.Events",
	.tp_basicsize = sizeof(EventsObject),
	.tp_dealloc = (destructor)events_dealloc,
	.tp_flags = Py_TPFLAGS_DEFAULT,
	.tp_doc = "A subscription to a broker's events (Broker.events).",
	.tp_methods = events_methods,
};

/* ---- module ----------------------------------------------------------------------- */

static PyMethodDef mod_methods[] = {
	{ "_create", mod_create, METH_VARARGS, create_doc },
	{ "remove", (PyCFunction)(void (*)(void))mod_remove, METH_VARARGS | METH_KEYWORDS, remove_doc },
	{ "keygen", mod_keygen, METH_O, keygen_doc },
	{ "strerror", mod_strerror, METH_O, strerror_doc },
	{ "schema_info", mod_schema_info, METH_O, schema_doc },
	{ "_stat_json", mod_stat_json, METH_VARARGS, stat_doc },
	{ "check", (PyCFunction)(void (*)(void))mod_check, METH_VARARGS | METH_KEYWORDS, check_doc },
	{ "_register_errors", mod_register_errors, METH_VARARGS, register_doc },
	{ "_waiters", mod_waiters, METH_O, waiters_doc },
	{ NULL, NULL, 0, NULL }
};

static struct PyModuleDef moddef = {
	PyModuleDef_HEAD_INIT,
	.m_name = "dh._dh",
	.m_doc = "The C core of the dh package (libdh bindings). Import dh, not this.",
	.m_size = -1,
	.m_methods = mod_methods,
};

PyMODINIT_FUNC
PyInit__dh(void)
{
	PyObject *m;
	static struct {
		const char *name;
		long value;
	} consts[] = {
		{ "DH_ECORRUPT", DH_ECORRUPT }, { "DH_EFOREIGN", DH_EFOREIGN }, { "DH_EVERSION", DH_EVERSION },
		{ "DH_ECHECKSUM", DH_ECHECKSUM }, { "DH_ESCHEMA", DH_ESCHEMA }, { "DH_EWRITERDEAD", DH_EWRITERDEAD },
		{ "DH_EEVICTED", DH_EEVICTED }, { "DH_EKEY", DH_EKEY }, { "DH_ETOOBIG", DH_ETOOBIG },
		{ "DH_EUNSUPPORTED", DH_EUNSUPPORTED }, { "DH_EKEYNEEDED", DH_EKEYNEEDED },
		{ "DH_ENOTKEYED", DH_ENOTKEYED }, { "DH_EKEYMODE", DH_EKEYMODE }, { "DH_EKEYSIZE", DH_EKEYSIZE },
		{ "KEY_BYTES", DH_KEY_BYTES }, { "NAME_MAX", DH_NAME_MAX }, { "READERS_MAX", DH_READERS_MAX },
		{ NULL, 0 }
	};

	if (PyType_Ready(&ReaderType) < 0 || PyType_Ready(&MessageType) < 0 || PyType_Ready(&WriterType) < 0 ||
	    PyType_Ready(&TxnType) < 0 || PyType_Ready(&BrokerType) < 0 || PyType_Ready(&EventsType) < 0)
		return NULL;
	if ((m = PyModule_Create(&moddef)) == NULL)
		return NULL;
	Py_INCREF(&ReaderType);
	Py_INCREF(&MessageType);
	Py_INCREF(&WriterType);
	Py_INCREF(&TxnType);
	Py_INCREF(&BrokerType);
	Py_INCREF(&EventsType);
	if (PyModule_AddObject(m, "Reader", (PyObject *)&ReaderType) < 0 ||
	    PyModule_AddObject(m, "Message", (PyObject *)&MessageType) < 0 ||
	    PyModule_AddObject(m, "Writer", (PyObject *)&WriterType) < 0 ||
	    PyModule_AddObject(m, "Transaction", (PyObject *)&TxnType) < 0 ||
	    PyModule_AddObject(m, "Broker", (PyObject *)&BrokerType) < 0 ||
	    PyModule_AddObject(m, "Events", (PyObject *)&EventsType) < 0 ||
	    PyModule_AddStringConstant(m, "LIBDH_VERSION", DH_VERSION) < 0) {
		Py_DECREF(m);
		return NULL;
	}
	for (int i = 0; consts[i].name != NULL; i++)
		if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0) {
			Py_DECREF(m);
			return NULL;
		}
	return m;
}
