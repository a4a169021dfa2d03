/* aqcore._native: the one per-token vocabulary pass aq adds to a decode loop, in C.
 *
 * Every governed step needs log Σ exp(logits) over the whole vocabulary: the chosen token's
 * surprisal goes into its observation and lineage leaf, and budgets are judged with it. In
 * numpy that is an exp into a scratch buffer and a sum over it, two ufunc calls whose code and
 * buffer a model's forward pass has just evicted from the CPU caches. exp_sum reads the logits
 * once, writes nothing, and evaluates exp with a polynomial the compiler vectorises (AVX-512 or
 * AVX2 chosen at load time on x86-64 Linux, plain -O3 elsewhere).
 *
 * The extension is optional: aqcore.sampling falls back to numpy when it is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define LANES 16   /* independent partial sums: the loop vectorises without reassociation */
#define BLOCK 1024 /* float lanes are added into the double total every BLOCK values */

/* exp(x) for x <= 0: 2^k * 2^f with f in [-0.5, 0.5], 2^f by Cephes' exp2f polynomial.
 * Relative error below 2.5e-7. Below -87 the argument is clamped: such a term is under 1.7e-38,
 * less than a float32 ulp of any total that includes the largest term (1). */
static inline float exp_le0(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 0.0f ? 0.0f : x;
    const float t = x * 1.44269504088896341f;       /* x / ln 2 */
    const float k = (t + 12582912.0f) - 12582912.0f; /* round to nearest (|t| < 2^22) */
    const float f = t - k;
    float p = 1.535336188319500e-4f;
    p = p * f + 1.339887440266574e-3f;
    p = p * f + 9.618437357674640e-3f;
    p = p * f + 5.550332471162809e-2f;
    p = p * f + 2.402264791363012e-1f;
    p = p * f + 6.931472028550421e-1f;
    p = p * f + 1.0f;
    const int32_t bits = ((int32_t)k + 127) << 23; /* 2^k, k in [-126, 0] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
__attribute__((target_clones("avx512f", "arch=haswell", "default")))
#endif
static double exp_sum_f32(const float *x, Py_ssize_t n, float shift)
{
    double total = 0.0;
    Py_ssize_t i = 0;
    while (i + LANES <= n) {
        float acc[LANES] = {0};
        const Py_ssize_t end = i + BLOCK < n ? i + BLOCK : n;
        for (; i + LANES <= end; i += LANES)
            for (int j = 0; j < LANES; j++)
                acc[j] += exp_le0(x[i + j] - shift);
        for (int j = 0; j < LANES; j++)
            total += acc[j];
    }
    for (; i < n; i++)
        total += exp_le0(x[i] - shift);
    return total;
}

PyDoc_STRVAR(exp_sum_doc,
"exp_sum(x, shift, /) -> float\n\n"
"The sum of exp(v - shift) over a one-dimensional C-contiguous float32 buffer x, for a shift\n"
"no smaller than any finite value of x (pass the maximum). Terms are accurate to 2.5e-7\n"
"relative; NaN in x gives NaN, a value above shift counts as exp(0).");

static PyObject *exp_sum(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "exp_sum() takes 2 arguments (x, shift), got %zd", nargs);
        return NULL;
    }
    const double shift = PyFloat_AsDouble(args[1]);
    if (shift == -1.0 && PyErr_Occurred())
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    const char *format = view.format;
    if (format != NULL && (format[0] == '@' || format[0] == '=' || (PY_LITTLE_ENDIAN && format[0] == '<')))
        format++; /* native byte order (ctypes arrays say '<f' on little-endian machines) */
    if (format == NULL || strcmp(format, "f") != 0 || view.itemsize != 4 || view.ndim != 1) {
        PyErr_Format(PyExc_ValueError,
                     "exp_sum(): x must be a one-dimensional C-contiguous float32 buffer "
                     "(got format %s, %d dimension(s))",
                     view.format ? view.format : "?", view.ndim);
        PyBuffer_Release(&view);
        return NULL;
    }
    const double total = exp_sum_f32((const float *)view.buf, view.len / 4, (float)shift);
    PyBuffer_Release(&view);
    return PyFloat_FromDouble(total);
}

static PyMethodDef methods[] = {
    {"exp_sum", (PyCFunction)(void (*)(void))exp_sum, METH_FASTCALL, exp_sum_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT, "aqcore._native", "aq's per-token vocabulary kernel (optional).", -1, methods,
};

PyMODINIT_FUNC PyInit__native(void)
{
    return PyModule_Create(&native_module);
}
