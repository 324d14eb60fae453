/* The glue of stream_rec.core.features, in C: assemble, user_columns, category_column and
 * category_trending (the source stream_rec.core.candidates.category_trending).
 *
 * build_candidates spent a third of its time in Python loops around small numpy calls:
 * taking the union of the sources' lists, scattering each source's score and rank into the
 * feature rows, and reading the user's purchases, touches and category affinities per
 * candidate. These kernels do the same loops over the same Python objects and write the
 * same values: every float is computed in double in the order the Python code computed it,
 * then stored as the array's type, so the features do not change by a bit.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <string.h>

/* A writable, C-contiguous 2-d buffer of float32 ('f') or float64 ('d') items. */
static int get_matrix(PyObject *obj, Py_buffer *view, const char *name, char code) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0) {
        return -1;
    }
    const char *format = view->format ? view->format : "B";
    Py_ssize_t size = code == 'f' ? 4 : 8;
    if (view->ndim != 2 || view->itemsize != size || format[strlen(format) - 1] != code) {
        PyErr_Format(PyExc_TypeError,
                     "%s: expected a writable 2-d contiguous array of %s, got format '%s' "
                     "in %d dimensions", name, code == 'f' ? "float32" : "float64", format,
                     view->ndim);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* A Python number as a double; -1 on error. */
static int number(PyObject *obj, double *value) {
    *value = PyFloat_AsDouble(obj);
    return *value == -1.0 && PyErr_Occurred() ? -1 : 0;
}

static int check_column(Py_ssize_t column, const Py_buffer *view, const char *name) {
    if (column < 0 || column >= view->shape[1]) {
        PyErr_Format(PyExc_IndexError, "%s: column %zd is outside the %zd columns of x", name,
                     column, view->shape[1]);
        return -1;
    }
    return 0;
}

/* The row of item in pos, adding it (as row len(items)) when new; -1 on error. */
static Py_ssize_t row_of(PyObject *item, PyObject *pos, PyObject *items) {
    PyObject *found = PyDict_GetItemWithError(pos, item);
    if (found != NULL) {
        return PyLong_AsSsize_t(found);
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    Py_ssize_t row = PyList_GET_SIZE(items);
    PyObject *index = PyLong_FromSsize_t(row);
    if (index == NULL) {
        return -1;
    }
    int failed = PyDict_SetItem(pos, item, index) < 0 || PyList_Append(items, item) < 0;
    Py_DECREF(index);
    return failed ? -1 : row;
}

typedef struct {
    float *x;
    double *parts, *scores;
    Py_ssize_t rows, width, sources;
} Outputs;

/* One source's candidate into the outputs; -1 on error. */
static int put(const Outputs *out, PyObject *pos, PyObject *items, Py_ssize_t s, double weight,
               Py_ssize_t rank_column, PyObject *item, PyObject *score, Py_ssize_t rank) {
    double raw;
    if (number(score, &raw) < 0) {
        return -1;
    }
    Py_ssize_t row = row_of(item, pos, items);
    if (row < 0) {
        return -1;
    }
    if (row >= out->rows) {
        PyErr_Format(PyExc_ValueError, "assemble: more than %zd candidates for the outputs' rows",
                     out->rows);
        return -1;
    }
    out->scores[row * out->sources + s] = raw;
    out->parts[row * out->sources + s] = weight * raw;
    out->x[row * out->width + rank_column] = (float)(1.0 / (1.0 + (double)rank));
    return 0;
}

/* One source (a dict item -> (score, anchor) or a list of (item, score, ...)); -1 on error. */
static int put_source(const Outputs *out, PyObject *pos, PyObject *items, Py_ssize_t s,
                      PyObject *source, double weight, Py_ssize_t rank_column) {
    if (PyDict_Check(source)) {
        Py_ssize_t at = 0, rank = 0;
        PyObject *item, *value;
        while (PyDict_Next(source, &at, &item, &value)) {
            if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) < 1) {
                PyErr_Format(PyExc_TypeError, "sources[%zd]: expected (score, anchor) values", s);
                return -1;
            }
            if (put(out, pos, items, s, weight, rank_column, item, PyTuple_GET_ITEM(value, 0),
                    rank++) < 0) {
                return -1;
            }
        }
        return 0;
    }
    if (!PyList_Check(source)) {
        PyErr_Format(PyExc_TypeError, "sources[%zd]: expected a dict or a list", s);
        return -1;
    }
    for (Py_ssize_t rank = 0; rank < PyList_GET_SIZE(source); rank++) {
        PyObject *entry = PyList_GET_ITEM(source, rank);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) < 2) {
            PyErr_Format(PyExc_TypeError, "sources[%zd][%zd]: expected an (item, score, ...) "
                         "tuple", s, rank);
            return -1;
        }
        if (put(out, pos, items, s, weight, rank_column, PyTuple_GET_ITEM(entry, 0),
                PyTuple_GET_ITEM(entry, 1), rank) < 0) {
            return -1;
        }
    }
    return 0;
}

/* assemble(sources, weights, rank_columns, x, parts, scores) -> (items, pos)
 *
 * The union of the sources' candidates in the order they enter (source by source, each in
 * its own order): items lists them, pos maps each to its row. For source s and a candidate
 * at rank j in it (0 = first) with raw score v: scores[row, s] = v, parts[row, s] =
 * weights[s] * v, x[row, rank_columns[s]] = 1 / (1 + j). x (float32), parts and scores
 * (float64) need as many rows as the sources have entries in all; the rows past
 * len(items) are not touched.
 */
static PyObject *assemble(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *sources, *weights, *rank_columns, *x_obj, *parts_obj, *scores_obj;
    if (!PyArg_ParseTuple(args, "O!O!O!OOO:assemble", &PyTuple_Type, &sources, &PyTuple_Type,
                          &weights, &PyTuple_Type, &rank_columns, &x_obj, &parts_obj,
                          &scores_obj)) {
        return NULL;
    }
    Py_ssize_t n_sources = PyTuple_GET_SIZE(sources);
    if (PyTuple_GET_SIZE(weights) != n_sources || PyTuple_GET_SIZE(rank_columns) != n_sources) {
        PyErr_SetString(PyExc_ValueError, "assemble: one weight and one rank column per source");
        return NULL;
    }
    Py_buffer x_view, parts_view, scores_view;
    if (get_matrix(x_obj, &x_view, "x", 'f') < 0) {
        return NULL;
    }
    if (get_matrix(parts_obj, &parts_view, "parts", 'd') < 0) {
        PyBuffer_Release(&x_view);
        return NULL;
    }
    if (get_matrix(scores_obj, &scores_view, "scores", 'd') < 0) {
        PyBuffer_Release(&x_view);
        PyBuffer_Release(&parts_view);
        return NULL;
    }
    PyObject *result = NULL, *items = NULL, *pos = NULL;
    if (parts_view.shape[1] != n_sources || scores_view.shape[1] != n_sources ||
        parts_view.shape[0] != x_view.shape[0] || scores_view.shape[0] != x_view.shape[0]) {
        PyErr_SetString(PyExc_ValueError, "assemble: parts and scores need one column per "
                        "source and the rows of x");
        goto done;
    }
    Outputs out = {x_view.buf, parts_view.buf, scores_view.buf, x_view.shape[0],
                   x_view.shape[1], n_sources};
    items = PyList_New(0);
    pos = PyDict_New();
    if (items == NULL || pos == NULL) {
        goto done;
    }
    for (Py_ssize_t s = 0; s < n_sources; s++) {
        double weight;
        if (number(PyTuple_GET_ITEM(weights, s), &weight) < 0) {
            goto done;
        }
        Py_ssize_t column = PyLong_AsSsize_t(PyTuple_GET_ITEM(rank_columns, s));
        if ((column == -1 && PyErr_Occurred()) ||
            check_column(column, &x_view, "rank_columns") < 0) {
            goto done;
        }
        if (put_source(&out, pos, items, s, PyTuple_GET_ITEM(sources, s), weight, column) < 0) {
            goto done;
        }
    }
    result = PyTuple_Pack(2, items, pos);
done:
    Py_XDECREF(items);
    Py_XDECREF(pos);
    PyBuffer_Release(&x_view);
    PyBuffer_Release(&parts_view);
    PyBuffer_Release(&scores_view);
    return result;
}

/* The row pos gives item (-1: absent, -2: error). */
static Py_ssize_t row_in(PyObject *pos, PyObject *item) {
    PyObject *found = PyDict_GetItemWithError(pos, item);
    if (found == NULL) {
        return PyErr_Occurred() ? -2 : -1;
    }
    Py_ssize_t row = PyLong_AsSsize_t(found);
    return row == -1 && PyErr_Occurred() ? -2 : row;
}

/* The purchases' columns (see user_columns); -1 on error. */
static int put_purchases(float *x, Py_ssize_t width, Py_ssize_t rows, PyObject *pos,
                         PyObject *purchased, double now_ms, const Py_ssize_t *columns) {
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(purchased); j++) {
        PyObject *entry = PyTuple_GET_ITEM(purchased, j);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 3) {
            PyErr_Format(PyExc_TypeError, "purchased[%zd]: expected (item, times, last_ms)", j);
            return -1;
        }
        Py_ssize_t k = row_in(pos, PyTuple_GET_ITEM(entry, 0));
        if (k == -2) {
            return -1;
        }
        int bought = k >= 0 ? PyObject_IsTrue(PyTuple_GET_ITEM(entry, 1)) : 0;
        if (bought < 0) {
            return -1;
        }
        if (!bought) {
            continue;
        }
        double times, last_ms;
        if (number(PyTuple_GET_ITEM(entry, 1), &times) < 0 ||
            number(PyTuple_GET_ITEM(entry, 2), &last_ms) < 0) {
            return -1;
        }
        if (k >= rows) {
            PyErr_Format(PyExc_IndexError, "pos: row %zd is outside the %zd rows of x", k, rows);
            return -1;
        }
        double since = now_ms - last_ms;
        float *row = x + k * width;
        row[columns[0]] = (float)log1p(times);
        row[columns[1]] = (float)log1p((since > 0.0 ? since : 0.0) / 86400000.0);
        row[columns[2]] = 1.0f;
        row[columns[3]] = (float)0.05;  /* bought, but not among the recent touches */
    }
    return 0;
}

/* The recent touches' columns (see user_columns); -1 on error. */
static int put_touches(float *x, Py_ssize_t width, Py_ssize_t rows, PyObject *pos,
                       PyObject *recent, const Py_ssize_t *columns) {
    static PyObject *item_name = NULL, *ts_name = NULL;
    if (item_name == NULL) {
        item_name = PyUnicode_InternFromString("item_id");
        ts_name = PyUnicode_InternFromString("ts_ms");
        if (item_name == NULL || ts_name == NULL) {
            return -1;
        }
    }
    PyObject *seen = PySet_New(NULL);
    if (seen == NULL) {
        return -1;
    }
    int status = -1;
    long long age = -1, instant = 0;
    for (Py_ssize_t j = PyTuple_GET_SIZE(recent) - 1; j >= 0; j--) {
        PyObject *touch = PyTuple_GET_ITEM(recent, j);
        PyObject *ts = PyObject_GetAttr(touch, ts_name);
        if (ts == NULL) {
            goto done;
        }
        long long ts_ms = PyLong_AsLongLong(ts);
        Py_DECREF(ts);
        if (ts_ms == -1 && PyErr_Occurred()) {
            goto done;
        }
        if (age < 0 || ts_ms != instant) {
            age++;
            instant = ts_ms;
        }
        PyObject *item = PyObject_GetAttr(touch, item_name);
        if (item == NULL) {
            goto done;
        }
        int known = PySet_Contains(seen, item);
        if (known == 0) {
            known = PySet_Add(seen, item);
            Py_ssize_t k = known < 0 ? -2 : row_in(pos, item);
            if (k >= rows) {
                PyErr_Format(PyExc_IndexError, "pos: row %zd is outside the %zd rows of x", k,
                             rows);
                k = -2;
            }
            if (k >= 0) {
                x[k * width + columns[2]] = 1.0f;
                x[k * width + columns[3]] = (float)(1.0 / (1.0 + (double)age));
            }
            known = k == -2 ? -1 : 0;
        }
        Py_DECREF(item);
        if (known < 0) {
            goto done;
        }
    }
    status = 0;
done:
    Py_DECREF(seen);
    return status;
}

/* user_columns(x, pos, purchased, recent, now_ms, columns) -> None
 *
 * What the user did with each candidate (pos: item -> row of x), into x's columns
 * (bought, bought_days, touched, touch_recency): for each purchase (item, times, last_ms)
 * of a candidate with times > 0, log1p(times), log1p(days since last_ms), touched 1 and
 * recency 0.05; then for each recently touched candidate, touched 1 and recency
 * 1 / (1 + its age), the age counting distinct instants back from the latest touch
 * (recent: Touch records, oldest first; an item's newest touch counts).
 */
static PyObject *user_columns(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *x_obj, *pos, *purchased, *recent, *now_obj;
    Py_ssize_t columns[4];
    if (!PyArg_ParseTuple(args, "OO!O!O!O(nnnn):user_columns", &x_obj, &PyDict_Type, &pos,
                          &PyTuple_Type, &purchased, &PyTuple_Type, &recent, &now_obj,
                          &columns[0], &columns[1], &columns[2], &columns[3])) {
        return NULL;
    }
    double now_ms;
    if (number(now_obj, &now_ms) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (get_matrix(x_obj, &view, "x", 'f') < 0) {
        return NULL;
    }
    int status = 0;
    for (int c = 0; c < 4 && status == 0; c++) {
        status = check_column(columns[c], &view, "columns");
    }
    if (status == 0) {
        status = put_purchases(view.buf, view.shape[1], view.shape[0], pos, purchased, now_ms,
                               columns);
    }
    if (status == 0) {
        status = put_touches(view.buf, view.shape[1], view.shape[0], pos, recent, columns);
    }
    PyBuffer_Release(&view);
    if (status < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* category_column(x, column, items, categories, affinity, total) -> None
 *
 * x[k, column] = affinity.get(categories.get(items[k], ""), 0.0) / total for every
 * candidate k: the user's affinity share for the item's category.
 */
static PyObject *category_column(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *x_obj, *items, *categories, *affinity;
    Py_ssize_t column;
    double total;
    if (!PyArg_ParseTuple(args, "OnO!O!O!d:category_column", &x_obj, &column, &PyList_Type,
                          &items, &PyDict_Type, &categories, &PyDict_Type, &affinity, &total)) {
        return NULL;
    }
    Py_buffer view;
    if (get_matrix(x_obj, &view, "x", 'f') < 0) {
        return NULL;
    }
    PyObject *empty = NULL;
    int status = check_column(column, &view, "column");
    if (status == 0 && PyList_GET_SIZE(items) > view.shape[0]) {
        PyErr_Format(PyExc_ValueError, "category_column: %zd items for %zd rows",
                     PyList_GET_SIZE(items), view.shape[0]);
        status = -1;
    }
    if (status == 0) {
        empty = PyUnicode_FromString("");
        status = empty == NULL ? -1 : 0;
    }
    float *x = view.buf;
    for (Py_ssize_t k = 0; status == 0 && k < PyList_GET_SIZE(items); k++) {
        PyObject *category = PyDict_GetItemWithError(categories, PyList_GET_ITEM(items, k));
        if (category == NULL && PyErr_Occurred()) {
            status = -1;
            break;
        }
        PyObject *share = PyDict_GetItemWithError(affinity, category ? category : empty);
        double value = 0.0;
        if (share == NULL) {
            status = PyErr_Occurred() ? -1 : 0;
        } else {
            status = number(share, &value);
        }
        x[k * view.shape[1] + column] = (float)(value / total);
    }
    Py_XDECREF(empty);
    PyBuffer_Release(&view);
    if (status < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The index of category among the favourites' keys (-1: none, -2: error); hashes: the
 * keys' hashes, compared first (a str caches its hash, so most misses cost no call). */
static Py_ssize_t favourite_of(PyObject *category, PyObject *const *keys,
                               const Py_hash_t *hashes, Py_ssize_t count) {
    Py_hash_t hash = PyObject_Hash(category);
    if (hash == -1 && PyErr_Occurred()) {
        return -2;
    }
    for (Py_ssize_t f = 0; f < count; f++) {
        if (hashes[f] != hash) {
            continue;
        }
        int same = keys[f] == category ? 1 : PyObject_RichCompareBool(keys[f], category, Py_EQ);
        if (same != 0) {
            return same > 0 ? f : -2;
        }
    }
    return -1;
}

/* category_trending(top, categories, favourites, total, exclude, n) -> {item: (score, category)}
 *
 * The trending items (top: (item, popularity) pairs, best first) in the user's favourite
 * categories (favourites: category -> affinity, summing to total): each category's mass is
 * the popularity of all its items in top, added best first, and the first n of them not in
 * exclude score popularity / mass[category] * favourites[category] / total (categories:
 * item -> category, "" when absent).
 */
static PyObject *category_trending(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *top, *categories, *favourites, *exclude;
    double total;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "O!O!O!dOn:category_trending", &PyList_Type, &top,
                          &PyDict_Type, &categories, &PyDict_Type, &favourites, &total,
                          &exclude, &n)) {
        return NULL;
    }
    Py_ssize_t size = PyList_GET_SIZE(top), count = PyDict_GET_SIZE(favourites);
    size_t slots = (size_t)(size > count ? size : count) + 1;
    /* per favourite: its key (borrowed), affinity and mass; per kept entry: its index in
     * top and its favourite */
    PyObject **keys = PyMem_Malloc(slots * sizeof(PyObject *));
    Py_hash_t *hashes = PyMem_Malloc(slots * sizeof(Py_hash_t));
    double *affinity = PyMem_Malloc(slots * sizeof(double));
    double *mass = PyMem_Malloc(slots * sizeof(double));
    Py_ssize_t *kept = PyMem_Malloc(slots * sizeof(Py_ssize_t));
    Py_ssize_t *kept_favourite = PyMem_Malloc(slots * sizeof(Py_ssize_t));
    PyObject *empty = PyUnicode_FromString(""), *result = NULL;
    Py_ssize_t nkept = 0;
    if (keys == NULL || hashes == NULL || affinity == NULL || mass == NULL || kept == NULL ||
        kept_favourite == NULL || empty == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_NoMemory();
        }
        goto done;
    }
    Py_ssize_t at = 0, f = 0;
    PyObject *key, *value;
    while (PyDict_Next(favourites, &at, &key, &value)) {
        keys[f] = key;
        hashes[f] = PyObject_Hash(key);
        mass[f] = 0.0;
        if ((hashes[f] == -1 && PyErr_Occurred()) || number(value, &affinity[f++]) < 0) {
            goto done;
        }
    }
    for (Py_ssize_t j = 0; j < size; j++) {
        PyObject *entry = PyList_GET_ITEM(top, j);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2) {
            PyErr_Format(PyExc_TypeError, "top[%zd]: expected an (item, popularity) tuple", j);
            goto done;
        }
        PyObject *item = PyTuple_GET_ITEM(entry, 0);
        PyObject *category = PyDict_GetItemWithError(categories, item);
        if (category == NULL && PyErr_Occurred()) {
            goto done;
        }
        Py_ssize_t favourite = favourite_of(category ? category : empty, keys, hashes, count);
        if (favourite == -2) {
            goto done;
        }
        if (favourite < 0) {
            continue;
        }
        double popularity;
        if (number(PyTuple_GET_ITEM(entry, 1), &popularity) < 0) {
            goto done;
        }
        mass[favourite] += popularity;
        if (nkept < n) {
            int skipped = PySequence_Contains(exclude, item);
            if (skipped < 0) {
                goto done;
            }
            if (!skipped) {
                kept[nkept] = j;
                kept_favourite[nkept++] = favourite;
            }
        }
    }
    result = PyDict_New();
    for (Py_ssize_t k = 0; result != NULL && k < nkept; k++) {
        PyObject *entry = PyList_GET_ITEM(top, kept[k]);
        Py_ssize_t fav = kept_favourite[k];
        double popularity;
        if (number(PyTuple_GET_ITEM(entry, 1), &popularity) < 0) {
            Py_CLEAR(result);
            break;
        }
        /* a category whose trending items have no popularity at all says nothing */
        double score = mass[fav] > 0.0 ? popularity / mass[fav] * affinity[fav] / total : 0.0;
        PyObject *pair = Py_BuildValue("(dO)", score, keys[fav]);
        if (pair == NULL || PyDict_SetItem(result, PyTuple_GET_ITEM(entry, 0), pair) < 0) {
            Py_XDECREF(pair);
            Py_CLEAR(result);
            break;
        }
        Py_DECREF(pair);
    }
done:
    PyMem_Free(keys);
    PyMem_Free(hashes);
    PyMem_Free(affinity);
    PyMem_Free(mass);
    PyMem_Free(kept);
    PyMem_Free(kept_favourite);
    Py_XDECREF(empty);
    return result;
}

static PyMethodDef methods[] = {
    {"assemble", assemble, METH_VARARGS,
     "assemble(sources, weights, rank_columns, x, parts, scores) -> (items, pos): the union "
     "of the sources' candidates, each source's score, weighted part and rank written into "
     "their rows."},
    {"user_columns", user_columns, METH_VARARGS,
     "user_columns(x, pos, purchased, recent, now_ms, (bought, bought_days, touched, "
     "touch_recency)) -> None: what the user did with each candidate, into x."},
    {"category_column", category_column, METH_VARARGS,
     "category_column(x, column, items, categories, affinity, total) -> None: the user's "
     "affinity share for each candidate's category, into x[:, column]."},
    {"category_trending", category_trending, METH_VARARGS,
     "category_trending(top, categories, favourites, total, exclude, n) -> {item: (score, "
     "category)}: the first n trending items of the favourite categories outside exclude, "
     "scored P(category) x P(item | category)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_features", "The glue kernels of stream_rec.core.features.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__features(void) { return PyModule_Create(&module); }
