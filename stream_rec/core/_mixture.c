/* The kernels of stream_rec.core.mixture, in C: mix_lists and best_of.
 *
 * mix_lists mixes the neighbour lists of a user's recent items (the anchors) into one score
 * per item, in the exact floating-point order of the numpy code it replaced (each item's
 * parts summed in anchor order, as np.bincount sums them), so the lists served do not
 * change by a bit. best_of takes the best n items of a scored set outside a filter, ties
 * broken by item id.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* the struct-module type code of a buffer's items ('B' when it gives no format) */
static char format_code(const Py_buffer *view) {
    return view->format ? view->format[strlen(view->format) - 1] : 'B';
}

/* a 1-d C-contiguous buffer of 8-byte items of the given kind: 'i' integers, 'f' floats */
static int get_buffer(PyObject *obj, Py_buffer *view, const char *name, char kind,
                      int writable) {
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return -1;
    }
    char code = format_code(view);
    int ok = kind == 'i' ? (code == 'l' || code == 'q') : code == 'd';
    if (!ok || view->itemsize != 8 || view->ndim != 1) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a 1-d contiguous array of %s, got format '%s' in %d "
                     "dimensions", name, kind == 'i' ? "int64" : "float64",
                     view->format ? view->format : "B", view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* order[0..n): entry indices sorted by rows, ties in index order. tmp: scratch of n. */
static void stable_order(const int64_t *rows, Py_ssize_t n, Py_ssize_t *order,
                         Py_ssize_t *tmp) {
    uint64_t top = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        order[i] = i;
        top |= (uint64_t)rows[i];
    }
    Py_ssize_t *src = order, *dst = tmp;
    for (int shift = 0; shift < 64 && (top >> shift) != 0; shift += 8) {
        Py_ssize_t count[257];
        memset(count, 0, sizeof(count));
        for (Py_ssize_t i = 0; i < n; i++) {
            count[(((uint64_t)rows[i] >> shift) & 0xFF) + 1]++;
        }
        for (int b = 0; b < 256; b++) {
            count[b + 1] += count[b];
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            Py_ssize_t k = src[i];
            dst[count[((uint64_t)rows[k] >> shift) & 0xFF]++] = k;
        }
        Py_ssize_t *swap = src;
        src = dst;
        dst = swap;
    }
    if (src != order) {
        memcpy(order, src, (size_t)n * sizeof(Py_ssize_t));
    }
}

/* The mixture of n entries into the outputs; returns how many rows. order: scratch of 2n. */
static Py_ssize_t mix_entries(const int64_t *rows, const double *parts, const int64_t *position,
                              Py_ssize_t n, Py_ssize_t *order, int64_t *out_rows,
                              double *out_score, int64_t *out_hits, int64_t *out_best) {
    Py_ssize_t k = -1;
    stable_order(rows, n, order, order + n);
    double top = 0.0;
    for (Py_ssize_t j = 0; j < n; j++) {
        Py_ssize_t i = order[j];
        if (k < 0 || rows[i] != out_rows[k]) {
            k++;
            out_rows[k] = rows[i];
            out_score[k] = 0.0 + parts[i];  /* bincount starts each bin at 0.0 */
            out_hits[k] = 1;
            out_best[k] = position[i];
            top = parts[i];
        } else {
            out_score[k] += parts[i];
            out_hits[k] += 1;
            if (parts[i] > top) {
                top = parts[i];
                out_best[k] = position[i];
            }
        }
    }
    return k + 1;
}

/* mix_lists(lists, scales, positive_only, out_rows, out_score, out_hits, out_best) -> k
 *
 * The mixture of several anchors' neighbour lists without gathering them first: lists[a]
 * is a (rows, weights) pair of 1-d arrays (int32 or int64 rows, float32 or float64
 * weights), and its entries are (rows[j], scales[a] * weights[j]) at position a, in order;
 * with positive_only, entries whose weight is not > 0 are left out. Writes, per distinct row
 * in ascending order, the row, the sum of its parts added in entry order, how many entries
 * reach it, and the position of its first entry with the largest part (outputs: writable
 * 1-d int64 / float64 / int64 / int64 arrays of at least the lists' total length); the
 * entries are ordered by a stable LSD radix sort by row, one pass per byte the largest row
 * needs.
 */
static int list_arrays(PyObject *pair, Py_buffer *rows, Py_buffer *weights, Py_ssize_t a) {
    PyObject *r, *w;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_Format(PyExc_TypeError, "lists[%zd]: expected a (rows, weights) tuple", a);
        return -1;
    }
    r = PyTuple_GET_ITEM(pair, 0);
    w = PyTuple_GET_ITEM(pair, 1);
    if (PyObject_GetBuffer(r, rows, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        return -1;
    }
    if (PyObject_GetBuffer(w, weights, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
        PyBuffer_Release(rows);
        return -1;
    }
    char rf = format_code(rows), wf = format_code(weights);
    int rows_ok = rows->ndim == 1 && ((rows->itemsize == 4 && rf == 'i') ||
                                      (rows->itemsize == 8 && (rf == 'l' || rf == 'q')));
    int weights_ok = weights->ndim == 1 && ((weights->itemsize == 4 && wf == 'f') ||
                                            (weights->itemsize == 8 && wf == 'd'));
    if (!rows_ok || !weights_ok || rows->shape[0] != weights->shape[0]) {
        PyErr_Format(PyExc_TypeError,
                     "lists[%zd]: expected 1-d int32/int64 rows and float32/float64 weights "
                     "of one length", a);
        PyBuffer_Release(rows);
        PyBuffer_Release(weights);
        return -1;
    }
    return 0;
}

static PyObject *mix_lists(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *lists, *scales, *outs[4];
    int positive_only;
    if (!PyArg_ParseTuple(args, "O!O!pOOOO:mix_lists", &PyList_Type, &lists, &PyList_Type,
                          &scales, &positive_only, &outs[0], &outs[1], &outs[2], &outs[3])) {
        return NULL;
    }
    Py_ssize_t nlists = PyList_GET_SIZE(lists);
    if (PyList_GET_SIZE(scales) != nlists) {
        PyErr_Format(PyExc_ValueError, "scales: %zd values for %zd lists",
                     PyList_GET_SIZE(scales), nlists);
        return NULL;
    }
    static const char *names[4] = {"out_rows", "out_score", "out_hits", "out_best"};
    Py_buffer views[4];
    Py_buffer *arrays = NULL;
    int got = 0;
    Py_ssize_t opened = 0;
    PyObject *result = NULL;
    int64_t *rows = NULL;
    for (; got < 4; got++) {
        if (get_buffer(outs[got], &views[got], names[got], got == 1 ? 'f' : 'i', 1) < 0) {
            goto done;
        }
    }
    arrays = PyMem_Malloc(2 * (size_t)(nlists > 0 ? nlists : 1) * sizeof(Py_buffer));
    if (arrays == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t total = 0;
    for (; opened < nlists; opened++) {
        if (list_arrays(PyList_GET_ITEM(lists, opened), &arrays[2 * opened],
                        &arrays[2 * opened + 1], opened) < 0) {
            goto done;
        }
        total += arrays[2 * opened].shape[0];
    }
    for (int j = 0; j < 4; j++) {
        if (views[j].shape[0] < total) {
            PyErr_Format(PyExc_ValueError, "%s: room for %zd entries, the lists have %zd",
                         names[j], views[j].shape[0], total);
            goto done;
        }
    }
    /* rows, parts, position, then 2 x total of sort scratch, in one allocation */
    size_t room = (size_t)(total > 0 ? total : 1);
    rows = PyMem_Malloc(room * (3 * sizeof(int64_t) + 2 * sizeof(Py_ssize_t)));
    if (rows == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    double *parts = (double *)(rows + room);
    int64_t *position = (int64_t *)(parts + room);
    Py_ssize_t *order = (Py_ssize_t *)(position + room);
    Py_ssize_t n = 0;
    for (Py_ssize_t a = 0; a < nlists; a++) {
        double scale = PyFloat_AsDouble(PyList_GET_ITEM(scales, a));
        if (scale == -1.0 && PyErr_Occurred()) {
            goto done;
        }
        Py_buffer *r = &arrays[2 * a], *w = &arrays[2 * a + 1];
        Py_ssize_t len = r->shape[0];
        for (Py_ssize_t j = 0; j < len; j++) {
            int64_t row = r->itemsize == 4 ? (int64_t)((const int32_t *)r->buf)[j]
                                           : ((const int64_t *)r->buf)[j];
            double weight = w->itemsize == 4 ? (double)((const float *)w->buf)[j]
                                             : ((const double *)w->buf)[j];
            if (positive_only && !(weight > 0.0)) {
                continue;
            }
            if (row < 0) {
                PyErr_Format(PyExc_ValueError, "lists[%zd]: row %lld: rows must be >= 0", a,
                             (long long)row);
                goto done;
            }
            rows[n] = row;
            parts[n] = weight * scale;
            position[n] = a;
            n++;
        }
    }
    /* the GIL is kept: a few microseconds of work, and releasing it could hand the thread
     * to the consumer thread for a whole switch interval */
    result = PyLong_FromSsize_t(mix_entries(rows, parts, position, n, order, views[0].buf,
                                            views[1].buf, views[2].buf, views[3].buf));
done:
    PyMem_Free(rows);
    for (Py_ssize_t a = 0; a < opened; a++) {
        PyBuffer_Release(&arrays[2 * a]);
        PyBuffer_Release(&arrays[2 * a + 1]);
    }
    PyMem_Free(arrays);
    for (int j = 0; j < got; j++) {
        PyBuffer_Release(&views[j]);
    }
    return result;
}

/* ---- best_of --------------------------------------------------------------------------
 *
 * best_of(score, rows, ids, n, skip) -> [(item, score, index)]
 *
 * The n best items ids[rows[k]] not in skip, best first, ties by item id (every item tied
 * with the n-th is compared). Walks the indices by score, best first, ties by index, until
 * n items pass skip and the score drops below the n-th one's; the walk starts on the
 * indices scoring at least the 2n-th best score and sorts all of them only when skip eats
 * into that prefix.
 */

typedef struct {
    double score;
    Py_ssize_t index;
} Ranked;

static int by_score_then_index(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    return (x->index > y->index) - (x->index < y->index);
}

/* the value of rank k (0 = the smallest) among v[0..m), reordering v */
static double select_rank(double *v, Py_ssize_t m, Py_ssize_t k) {
    Py_ssize_t lo = 0, hi = m - 1;
    while (lo < hi) {
        double a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi];
        double pivot = a < b ? (b < c ? b : (a < c ? c : a)) : (a < c ? a : (b < c ? c : b));
        Py_ssize_t i = lo, j = hi;
        while (i <= j) {
            while (v[i] < pivot) i++;
            while (v[j] > pivot) j--;
            if (i <= j) {
                double t = v[i];
                v[i] = v[j];
                v[j] = t;
                i++;
                j--;
            }
        }
        if (k <= j) {
            hi = j;
        } else if (k >= i) {
            lo = i;
        } else {
            return v[k];
        }
    }
    return v[k];
}

/* into order: every index (top <= 0) or those scoring at least the top-th best score, best
 * first, ties by index; returns how many. scratch: m doubles. */
static Py_ssize_t top_order(const double *score, Py_ssize_t m, Py_ssize_t top, Ranked *order,
                            double *scratch) {
    Py_ssize_t count = 0;
    if (top <= 0 || top >= m) {
        for (Py_ssize_t i = 0; i < m; i++) {
            order[count].score = score[i];
            order[count++].index = i;
        }
    } else {
        memcpy(scratch, score, (size_t)m * sizeof(double));
        double cut = select_rank(scratch, m, m - top);
        for (Py_ssize_t i = 0; i < m; i++) {
            if (score[i] >= cut) {
                order[count].score = score[i];
                order[count++].index = i;
            }
        }
    }
    qsort(order, (size_t)count, sizeof(Ranked), by_score_then_index);
    return count;
}

typedef struct {
    double score;
    PyObject *item; /* borrowed from ids */
    Py_ssize_t index;
} Found;

static int by_score_then_id(const void *a, const void *b) {
    const Found *x = a, *y = b;
    if (x->score != y->score) {
        return x->score > y->score ? -1 : 1;
    }
    if (PyErr_Occurred()) {
        return 0; /* a comparison failed: finish the sort without calling Python again */
    }
    /* str items compare by code points; an error is caught by the caller via PyErr_Occurred */
    int less = PyObject_RichCompareBool(x->item, y->item, Py_LT);
    if (less != 0) {
        return less > 0 ? -1 : 0;
    }
    return PyObject_RichCompareBool(y->item, x->item, Py_LT) > 0 ? 1 : 0;
}

/* 1: done; 0: the prefix ran out before the walk could stop; -1: error */
static int walk(const Ranked *order, Py_ssize_t count, Py_ssize_t m, const int64_t *rows,
                PyObject *ids, Py_ssize_t n, PyObject *skip, Found *found,
                Py_ssize_t *nfound) {
    int have_cut = 0;
    double cut = 0.0;
    Py_ssize_t size = PyList_GET_SIZE(ids);
    *nfound = 0;
    for (Py_ssize_t j = 0; j < count; j++) {
        double value = order[j].score;
        if (have_cut && value < cut) {
            return 1;
        }
        int64_t row = rows[order[j].index];
        if (row < 0 || row >= size) {
            PyErr_Format(PyExc_IndexError, "rows[%zd] is %lld: not a position in ids (%zd)",
                         order[j].index, (long long)row, size);
            return -1;
        }
        PyObject *item = PyList_GET_ITEM(ids, row);
        int skipped = PySequence_Contains(skip, item);
        if (skipped < 0) {
            return -1;
        }
        if (skipped) {
            continue;
        }
        found[*nfound].score = value;
        found[*nfound].item = item;
        found[*nfound].index = order[j].index;
        (*nfound)++;
        if (!have_cut && *nfound == n) {
            have_cut = 1;
            cut = value;
        }
    }
    return have_cut || count == m ? 1 : 0;
}

static PyObject *best_of(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *score_obj, *rows_obj, *ids, *skip;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OOO!nO:best_of", &score_obj, &rows_obj, &PyList_Type, &ids,
                          &n, &skip)) {
        return NULL;
    }
    Py_buffer score_view, rows_view;
    if (get_buffer(score_obj, &score_view, "score", 'f', 0) < 0) {
        return NULL;
    }
    if (get_buffer(rows_obj, &rows_view, "rows", 'i', 0) < 0) {
        PyBuffer_Release(&score_view);
        return NULL;
    }
    PyObject *result = NULL;
    Ranked *order = NULL;
    Found *found = NULL;
    double *scratch = NULL;
    Py_ssize_t m = score_view.shape[0];
    if (rows_view.shape[0] != m) {
        PyErr_Format(PyExc_ValueError, "rows: %zd entries, score has %zd", rows_view.shape[0],
                     m);
        goto done;
    }
    const double *score = score_view.buf;
    const int64_t *rows = rows_view.buf;
    if (n <= 0 || m == 0) {
        result = PyList_New(0);
        goto done;
    }
    size_t slots = (size_t)m;
    order = PyMem_Malloc(slots * sizeof(Ranked));
    found = PyMem_Malloc(slots * sizeof(Found));
    scratch = PyMem_Malloc(slots * sizeof(double));
    if (order == NULL || found == NULL || scratch == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t nfound = 0;
    Py_ssize_t count = top_order(score, m, 2 * n, order, scratch);
    int walked = walk(order, count, m, rows, ids, n, skip, found, &nfound);
    if (walked == 0) {
        count = top_order(score, m, 0, order, scratch);
        walked = walk(order, count, m, rows, ids, n, skip, found, &nfound);
    }
    if (walked < 0) {
        goto done;
    }
    qsort(found, (size_t)nfound, sizeof(Found), by_score_then_id);
    if (PyErr_Occurred()) {
        goto done;
    }
    Py_ssize_t keep = nfound < n ? nfound : n;
    result = PyList_New(keep);
    if (result == NULL) {
        goto done;
    }
    for (Py_ssize_t j = 0; j < keep; j++) {
        PyObject *entry = Py_BuildValue("(Odn)", found[j].item, found[j].score, found[j].index);
        if (entry == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyList_SET_ITEM(result, j, entry);
    }
done:
    PyMem_Free(order);
    PyMem_Free(found);
    PyMem_Free(scratch);
    PyBuffer_Release(&score_view);
    PyBuffer_Release(&rows_view);
    return result;
}

static PyMethodDef methods[] = {
    {"mix_lists", mix_lists, METH_VARARGS,
     "mix_lists(lists, scales, positive_only, out_rows, out_score, out_hits, out_best) -> k: "
     "the mixture of (rows, weights) lists, entry j of list a weighing scales[a] x "
     "weights[j], written into the first k entries of the outputs."},
    {"best_of", best_of, METH_VARARGS,
     "best_of(score, rows, ids, n, skip) -> [(item, score, index)]: the n best items "
     "ids[rows[k]] not in skip, best first, ties by item id (stream_rec.core.mixture.best_of)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_mixture", "The mixture kernel of stream_rec.core.mixture.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__mixture(void) { return PyModule_Create(&module); }
