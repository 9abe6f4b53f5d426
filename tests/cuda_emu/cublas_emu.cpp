/* The cuBLAS emulation: handles as tokens bound to a stream and a math mode, and SGEMM with the
 * argument checks of the cuBLAS documentation (cublas<t>gemm), a bounds check of every operand
 * against the allocation table, and the product as a plain loop accumulated in double. TF32
 * mode rounds A and B to TF32 (10 mantissa bits, round to nearest even) first, as the tensor
 * cores do, so tolerances chosen for TF32 are exercised. cublasGemmEx checks its type and
 * compute-type combination as cuBLAS does and computes bf16 inputs with FP32 accumulation. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <mutex>
#include <set>
#include <vector>

#include "cublas_v2.h"
#include "cuda_bf16.h"
#include "cuda_emu_internal.h"

using namespace dpt_emu;

namespace {

struct handle_rec {
    cudaStream_t stream;
    cublasMath_t math;
    void *workspace; /* the library's own, until cublasSetWorkspace gives it the user's */
};

/* cuBLAS's default workspace on Hopper, which the emulated GPU reports itself as (sm_90): the
 * size the cublasSetWorkspace documentation recommends there, allocated with the handle. */
const size_t DEFAULT_WORKSPACE = (size_t)32 << 20;

std::mutex g_lock;
std::set<const void *> g_handles;

bool handle_valid(cublasHandle_t h)
{
    std::lock_guard<std::mutex> g(g_lock);
    return h && g_handles.count((const void *)h);
}

/* A float rounded to TF32: 8-bit exponent, 10-bit mantissa; NaN and infinity pass through. */
float to_tf32(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0x7f800000u)
        return x;
    u += 0xfffu + ((u >> 13) & 1u); /* round to nearest, ties to even, at bit 13 */
    u &= 0xffffe000u;
    float y;
    memcpy(&y, &u, sizeof y);
    return y;
}

/* Elements a column-major (rows, cols) operand with leading dimension ld spans, first to last. */
size_t span(int rows, int cols, int ld)
{
    return (size_t)(cols - 1) * (size_t)ld + (size_t)rows;
}

/* A column-major operand as the argument checks see it: its address, stored shape, leading
 * dimension and element size (4 for float, 2 for bf16). */
struct operand {
    const void *p;
    int rows, cols, ld;
    size_t esz;
    size_t bytes() const { return span(rows, cols, ld) * esz; }
};

/* Marks the bytes a column-major operand touches; used only when two operands' spans overlap,
 * to tell a real alias from interleaved columns. */
void mark(std::vector<unsigned char> &touched, const char *lo, const operand &o, unsigned char bit)
{
    for (int j = 0; j < o.cols; j++)
        for (int i = 0; i < o.rows; i++) {
            size_t off = (size_t)((const char *)o.p + ((size_t)j * o.ld + i) * o.esz - lo);
            for (size_t b = 0; b < o.esz; b++)
                touched[off + b] |= bit;
        }
}

/* True when some byte of C is also a byte of X (both column-major). */
bool aliases(const operand &c, const operand &x)
{
    const char *c0 = (const char *)c.p, *c1 = c0 + c.bytes();
    const char *x0 = (const char *)x.p, *x1 = x0 + x.bytes();
    if (!(c0 < x1 && x0 < c1))
        return false;
    const char *lo = c0 < x0 ? c0 : x0, *hi = c1 > x1 ? c1 : x1;
    std::vector<unsigned char> touched((size_t)(hi - lo), 0);
    mark(touched, lo, c, 1);
    mark(touched, lo, x, 2);
    for (unsigned char t : touched)
        if (t == 3)
            return true;
    return false;
}

/* cublas<t>gemm's and cublasGemmEx's argument checks (the cuBLAS documentation's list, then the
 * emulation's bounds and alias checks): CUBLAS_STATUS_SUCCESS with *run set when the product
 * must be computed (and *reads_ab when A and B are read: k > 0 and alpha != 0, as the reference
 * BLAS skips them otherwise), SUCCESS with *run clear when there is nothing to do, or the error
 * status after a report naming the argument. */
cublasStatus_t check_gemm(const char *who, bool ta, bool tb, cublasOperation_t transa,
                          cublasOperation_t transb, int m, int n, int k, const float *alpha,
                          const float *beta, const operand &A, const operand &B,
                          const operand &C, bool *run, bool *reads_ab)
{
    const int lda = A.ld, ldb = B.ld, ldc = C.ld;
    *run = *reads_ab = false;
    const char *bad = NULL;
    if ((unsigned)transa > CUBLAS_OP_C || (unsigned)transb > CUBLAS_OP_C)
        bad = "transa or transb is not CUBLAS_OP_N, _T or _C";
    else if (m < 0 || n < 0 || k < 0)
        bad = "m, n or k is negative";
    else if (lda < (A.rows > 1 ? A.rows : 1))
        bad = ta ? "lda < max(1, k) with transa = T" : "lda < max(1, m) with transa = N";
    else if (ldb < (B.rows > 1 ? B.rows : 1))
        bad = tb ? "ldb < max(1, n) with transb = T" : "ldb < max(1, k) with transb = N";
    else if (ldc < (m > 1 ? m : 1))
        bad = "ldc < max(1, m)";
    else if (!alpha || !beta)
        bad = "alpha or beta is NULL";
    if (bad) {
        report(who, "%s (transa %s, transb %s, m %d, n %d, k %d, lda %d, ldb %d, ldc %d)", bad,
               ta ? "T" : "N", tb ? "T" : "N", m, n, k, lda, ldb, ldc);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (m == 0 || n == 0)
        return CUBLAS_STATUS_SUCCESS;
    *reads_ab = k > 0 && *alpha != 0.0f;
    if (!*reads_ab && *beta == 1.0f)
        return CUBLAS_STATUS_SUCCESS;

    /* every element touched must lie inside one device allocation */
    const int dev = MEM_DEVICE | MEM_PINNED;
    char what[160];
    if (*reads_ab) {
        snprintf(what, sizeof what, "A (%d x %d, lda %d, %s)", A.rows, A.cols, lda,
                 ta ? "transposed" : "not transposed");
        if (!check_range(who, what, A.p, A.bytes(), dev))
            return CUBLAS_STATUS_INVALID_VALUE;
        snprintf(what, sizeof what, "B (%d x %d, ldb %d, %s)", B.rows, B.cols, ldb,
                 tb ? "transposed" : "not transposed");
        if (!check_range(who, what, B.p, B.bytes(), dev))
            return CUBLAS_STATUS_INVALID_VALUE;
    }
    snprintf(what, sizeof what, "C (%d x %d, ldc %d)", m, n, ldc);
    if (!check_range(who, what, C.p, C.bytes(), dev))
        return CUBLAS_STATUS_INVALID_VALUE;
    /* cuBLAS gives no result when the output aliases an input: refuse it loudly */
    if (*reads_ab && (aliases(C, A) || aliases(C, B))) {
        report(who, "C shares elements with %s; cuBLAS does not allow the output to alias an input",
               aliases(C, A) ? "A" : "B");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    *run = true;
    return CUBLAS_STATUS_SUCCESS;
}

} // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (current_device() >= device_count())
        return CUBLAS_STATUS_NOT_INITIALIZED; /* as cuBLAS without a usable device */
    void *ws = NULL;
    if (library_alloc(&ws, DEFAULT_WORKSPACE, "cuBLAS workspace") != cudaSuccess) {
        (void)cudaGetLastError();
        return CUBLAS_STATUS_ALLOC_FAILED;
    }
    handle_rec *h = new handle_rec{0, CUBLAS_DEFAULT_MATH, ws};
    std::lock_guard<std::mutex> g(g_lock);
    g_handles.insert(h);
    *handle = (cublasHandle_t)(void *)h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle)
{
    std::lock_guard<std::mutex> g(g_lock);
    if (!handle || !g_handles.erase((const void *)handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    synchronize_all(); /* its queued GEMMs first, as cudaFree */
    (void)library_free(((handle_rec *)(void *)handle)->workspace);
    delete (handle_rec *)(void *)handle;
    return CUBLAS_STATUS_SUCCESS;
}

/* The user's workspace replaces the library's: device memory the caller owns, or none (NULL, 0). */
cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void *workspace, size_t bytes)
{
    if (!handle_valid(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if ((workspace == NULL) != (bytes == 0) ||
        (workspace && !check_range("cublasSetWorkspace", "workspace", workspace, bytes,
                                   MEM_DEVICE)))
        return CUBLAS_STATUS_INVALID_VALUE;
    handle_rec *h = (handle_rec *)(void *)handle;
    synchronize_all();
    (void)library_free(h->workspace);
    h->workspace = NULL;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream)
{
    if (!handle_valid(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream_valid(stream)) {
        report("cublasSetStream", "stream %p was never created or is already destroyed",
               (void *)stream);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    ((handle_rec *)(void *)handle)->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode)
{
    if (!handle_valid(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TENSOR_OP_MATH &&
        mode != CUBLAS_PEDANTIC_MATH && mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    ((handle_rec *)(void *)handle)->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetVersion(cublasHandle_t handle, int *version)
{
    (void)handle;
    if (!version)
        return CUBLAS_STATUS_INVALID_VALUE;
    *version = CUBLAS_VERSION;
    return CUBLAS_STATUS_SUCCESS;
}

const char *cublasGetStatusString(cublasStatus_t status)
{
    /* cuBLAS's own wording */
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "the operation completed successfully";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "the architecture is not supported";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "error detected trying to check the license";
    }
    return "unknown error";
}

static void gemm(bool ta, bool tb, int m, int n, int k, double al, const float *A, int lda,
                 const float *B, int ldb, double be, float *C, int ldc, bool reads_ab, bool tf32);

cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float *alpha,
                           const float *A, int lda, const float *B, int ldb, const float *beta,
                           float *C, int ldc)
{
    if (!handle_valid(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    /* A is stored (m, k) when not transposed, else (k, m); B (k, n), else (n, k) */
    const operand oa{A, ta ? k : m, ta ? m : k, lda, sizeof(float)};
    const operand ob{B, tb ? n : k, tb ? k : n, ldb, sizeof(float)};
    const operand oc{C, m, n, ldc, sizeof(float)};
    bool run = false, reads_ab = false;
    cublasStatus_t st = check_gemm("cublasSgemm", ta, tb, transa, transb, m, n, k, alpha, beta,
                                   oa, ob, oc, &run, &reads_ab);
    if (st != CUBLAS_STATUS_SUCCESS || !run)
        return st;
    const double al = *alpha, be = *beta;
    const bool tf32 = ((handle_rec *)(void *)handle)->math == CUBLAS_TF32_TENSOR_OP_MATH;
    /* alpha and beta are host scalars: read now; the matrices when the stream runs it */
    enqueue(((handle_rec *)(void *)handle)->stream, [=] {
        gemm(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc, reads_ab, tf32);
    });
    return CUBLAS_STATUS_SUCCESS;
}

/* Whether cuBLAS supports (Atype, Btype, Ctype) under computeType in cublasGemmEx (the cuBLAS
 * documentation's table for cublasGemmEx; complex types left out: dptrain has none). */
static bool gemm_ex_supported(cudaDataType at, cudaDataType bt, cudaDataType ct,
                              cublasComputeType_t compute)
{
    if (at != bt)
        return false;
    switch (compute) {
    case CUBLAS_COMPUTE_16F:
    case CUBLAS_COMPUTE_16F_PEDANTIC: return at == CUDA_R_16F && ct == CUDA_R_16F;
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
        return (at == CUDA_R_16BF && (ct == CUDA_R_16BF || ct == CUDA_R_32F)) ||
               (at == CUDA_R_16F && (ct == CUDA_R_16F || ct == CUDA_R_32F)) ||
               (at == CUDA_R_8I && ct == CUDA_R_32F) || (at == CUDA_R_32F && ct == CUDA_R_32F);
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32: return at == CUDA_R_32F && ct == CUDA_R_32F;
    case CUBLAS_COMPUTE_64F:
    case CUBLAS_COMPUTE_64F_PEDANTIC: return at == CUDA_R_64F && ct == CUDA_R_64F;
    case CUBLAS_COMPUTE_32I:
    case CUBLAS_COMPUTE_32I_PEDANTIC: return at == CUDA_R_8I && ct == CUDA_R_32I;
    }
    return false;
}

static void gemm_bf16(bool ta, bool tb, int m, int n, int k, float al, const __nv_bfloat16 *A,
                      int lda, const __nv_bfloat16 *B, int ldb, float be, float *C, int ldc,
                      bool reads_ab);

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                            cublasOperation_t transb, int m, int n, int k, const void *alpha,
                            const void *A, cudaDataType Atype, int lda, const void *B,
                            cudaDataType Btype, int ldb, const void *beta, void *C,
                            cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                            cublasGemmAlgo_t algo)
{
    static const char *who = "cublasGemmEx";
    if (!handle_valid(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!gemm_ex_supported(Atype, Btype, Ctype, computeType)) {
        report(who, "cuBLAS does not support Atype %d, Btype %d, Ctype %d with computeType %d",
               (int)Atype, (int)Btype, (int)Ctype, (int)computeType);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const bool bf16 = Atype == CUDA_R_16BF && Ctype == CUDA_R_32F;
    if (!bf16 && !(Atype == CUDA_R_32F && Ctype == CUDA_R_32F)) {
        report(who, "Atype %d with Ctype %d is valid cuBLAS but not emulated (only 32F and "
               "16BF inputs with a 32F output are)", (int)Atype, (int)Ctype);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (algo != CUBLAS_GEMM_DEFAULT && algo != CUBLAS_GEMM_DEFAULT_TENSOR_OP) {
        report(who, "algo %d is not emulated (CUBLAS_GEMM_DEFAULT or _DEFAULT_TENSOR_OP)",
               (int)algo);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const bool ta = transa != CUBLAS_OP_N, tb = transb != CUBLAS_OP_N;
    const size_t esz = bf16 ? sizeof(__nv_bfloat16) : sizeof(float);
    const operand oa{A, ta ? k : m, ta ? m : k, lda, esz};
    const operand ob{B, tb ? n : k, tb ? k : n, ldb, esz};
    const operand oc{C, m, n, ldc, sizeof(float)};
    /* the 32F compute types take float alpha and beta */
    const float *alf = (const float *)alpha, *bef = (const float *)beta;
    bool run = false, reads_ab = false;
    cublasStatus_t st = check_gemm(who, ta, tb, transa, transb, m, n, k, alf, bef, oa, ob, oc,
                                   &run, &reads_ab);
    if (st != CUBLAS_STATUS_SUCCESS || !run)
        return st;
    const float al = *alf, be = *bef;
    handle_rec *h = (handle_rec *)(void *)handle;
    /* FP32 inputs under CUBLAS_COMPUTE_32F follow the handle's math mode, as cublasSgemm */
    const bool tf32 = h->math == CUBLAS_TF32_TENSOR_OP_MATH;
    const __nv_bfloat16 *ab = (const __nv_bfloat16 *)A, *bb = (const __nv_bfloat16 *)B;
    const float *af = (const float *)A, *bf = (const float *)B;
    float *c = (float *)C;
    enqueue(h->stream, [=] {
        if (bf16)
            gemm_bf16(ta, tb, m, n, k, al, ab, lda, bb, ldb, be, c, ldc, reads_ab);
        else
            gemm(ta, tb, m, n, k, al, af, lda, bf, ldb, be, c, ldc, reads_ab, tf32);
    });
    return CUBLAS_STATUS_SUCCESS;
}

/* The column-major product of bf16 operands: every product is exact in float (8 x 8
 * significant bits), summed over k in order in float, the FP32 accumulation of
 * CUBLAS_COMPUTE_32F (the tensor cores' order differs: the backends' parity tolerance covers
 * any order). */
static void gemm_bf16(bool ta, bool tb, int m, int n, int k, float al, const __nv_bfloat16 *A,
                      int lda, const __nv_bfloat16 *B, int ldb, float be, float *C, int ldc,
                      bool reads_ab)
{
    std::vector<float> opa(reads_ab ? (size_t)m * k : 0);
    if (reads_ab)
        for (int l = 0; l < k; l++)
            for (int i = 0; i < m; i++)
                opa[i + (size_t)l * m] =
                    __bfloat162float(ta ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda]);
    std::vector<float> acc((size_t)m);
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++)
            acc[i] = 0.0f;
        if (reads_ab)
            for (int l = 0; l < k; l++) {
                float bl = __bfloat162float(tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb]);
                const float *col = &opa[(size_t)l * m];
                for (int i = 0; i < m; i++)
                    acc[i] += col[i] * bl;
            }
        float *c = C + (size_t)j * ldc;
        for (int i = 0; i < m; i++)
            c[i] = be == 0.0f ? al * acc[i] : al * acc[i] + be * c[i];
    }
}

/* The column-major product, summed over k in order in double for every (i, j). */
static void gemm(bool ta, bool tb, int m, int n, int k, double al, const float *A, int lda,
                 const float *B, int ldb, double be, float *C, int ldc, bool reads_ab, bool tf32)
{
    /* op(A) as a dense column-major (m, k) in double, TF32-rounded when the mode says so */
    std::vector<double> opa(reads_ab ? (size_t)m * k : 0);
    if (reads_ab)
        for (int l = 0; l < k; l++)
            for (int i = 0; i < m; i++) {
                float x = ta ? A[l + (size_t)i * lda] : A[i + (size_t)l * lda];
                opa[i + (size_t)l * m] = tf32 ? to_tf32(x) : x;
            }
    std::vector<double> acc((size_t)m);
    for (int j = 0; j < n; j++) {
        for (int i = 0; i < m; i++)
            acc[i] = 0.0;
        if (reads_ab)
            for (int l = 0; l < k; l++) {
                float y = tb ? B[j + (size_t)l * ldb] : B[l + (size_t)j * ldb];
                double bl = tf32 ? to_tf32(y) : y;
                const double *col = &opa[(size_t)l * m];
                for (int i = 0; i < m; i++)
                    acc[i] += col[i] * bl; /* sum over l in order, for every (i, j) */
            }
        float *c = C + (size_t)j * ldc;
        for (int i = 0; i < m; i++)
            /* beta = 0: C is not read, so NaN or garbage there is overwritten, as in cuBLAS */
            c[i] = (float)(be == 0.0 ? al * acc[i] : al * acc[i] + be * (double)c[i]);
    }
}

} /* extern "C" */

namespace dpt_emu {

void blas_sgemm(bool ta, bool tb, int m, int n, int k, double al, const float *A, int lda,
                const float *B, int ldb, double be, float *C, int ldc, bool reads_ab, bool tf32)
{
    gemm(ta, tb, m, n, k, al, A, lda, B, ldb, be, C, ldc, reads_ab, tf32);
}

void blas_gemm_bf16(bool ta, bool tb, int m, int n, int k, float al, const void *A, int lda,
                    const void *B, int ldb, float be, float *C, int ldc, bool reads_ab)
{
    gemm_bf16(ta, tb, m, n, k, al, (const __nv_bfloat16 *)A, lda, (const __nv_bfloat16 *)B, ldb,
              be, C, ldc, reads_ab);
}

} // namespace dpt_emu
