/* The cuBLASLt emulation: descriptors as host records, one "algorithm" the heuristic hands out
 * for every problem cublasLtMatmul accepts, and cublasLtMatmul as the emulated cuBLAS's product
 * (cublas_emu.cpp) followed by the epilogue exactly as cublasLt.h documents it, queued on the
 * stream like cuBLAS's calls (so it is asynchronous and graph-capturable alike). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>
#include <set>
#include <vector>

#include "cublasLt.h"
#include "cuda_bf16.h"
#include "cuda_emu_internal.h"

using namespace dpt_emu;

struct cublasLtMatmulDescOpaque {
    cublasComputeType_t compute;
    cudaDataType scale;
    int32_t transa, transb;
    uint32_t epilogue;
    const void *bias;
    const void *aux;
    int64_t aux_ld;
    int32_t bias_type; /* -1: the output's type (cublasLt.h's default) */
};

struct cublasLtMatrixLayoutOpaque {
    cudaDataType type;
    uint64_t rows, cols;
    int64_t ld;
};

struct cublasLtMatmulPreferenceOpaque {
    uint64_t max_workspace;
};

namespace {

const uint64_t ALGO_TAG = 0x4c54454d55ULL; /* "LTEMU": the one emulated algorithm */

std::mutex g_lock;
std::set<const void *> g_handles;

bool lt_handle_valid(cublasLtHandle_t h)
{
    std::lock_guard<std::mutex> g(g_lock);
    return h && g_handles.count((const void *)h);
}

size_t type_size(cudaDataType t) { return t == CUDA_R_16BF ? 2 : 4; }

/* cuBLASLt's matmul type table, the rows dptrain can use: FP32 or bf16 A/B with FP32 C/D under
 * CUBLAS_COMPUTE_32F, bf16 A/B/C/D under CUBLAS_COMPUTE_32F, FP32 A/B/C/D under
 * CUBLAS_COMPUTE_32F_FAST_TF32, scale type FP32 (C and D of one type in each row). */
bool types_supported(const cublasLtMatmulDescOpaque *d, const cublasLtMatrixLayoutOpaque *a,
                     const cublasLtMatrixLayoutOpaque *b, const cublasLtMatrixLayoutOpaque *c,
                     const cublasLtMatrixLayoutOpaque *dd)
{
    if (d->scale != CUDA_R_32F || a->type != b->type || c->type != dd->type)
        return false;
    if (dd->type == CUDA_R_16BF)
        return d->compute == CUBLAS_COMPUTE_32F && a->type == CUDA_R_16BF;
    if (dd->type != CUDA_R_32F)
        return false;
    if (d->compute == CUBLAS_COMPUTE_32F)
        return a->type == CUDA_R_32F || a->type == CUDA_R_16BF;
    return d->compute == CUBLAS_COMPUTE_32F_FAST_TF32 && a->type == CUDA_R_32F;
}

/* The bias's type: D's unless CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE says otherwise. */
int32_t bias_type(const cublasLtMatmulDescOpaque *d, const cublasLtMatrixLayoutOpaque *dd)
{
    return d->bias_type == -1 ? (int32_t)dd->type : d->bias_type;
}

/* cublasLt.h (BIAS_DATA_TYPE): "Bias vector elements are the same type as the elements of
 * output matrix (Dtype)", the exceptions IMMA and fp8 kernels only, so an FP32 bias with a bf16
 * D is refused unless DPT_EMU_LT_BF16_D_FP32_BIAS=1 (the assumption that a GPU's cuBLASLt
 * accepts it, as its heuristic is then asked at start-up: the emulation can run both answers). */
bool bias_type_ok(const cublasLtMatmulDescOpaque *d, const cublasLtMatrixLayoutOpaque *dd)
{
    int32_t t = bias_type(d, dd);
    if (t == (int32_t)dd->type)
        return true;
    const char *s = getenv("DPT_EMU_LT_BF16_D_FP32_BIAS");
    return t == CUDA_R_32F && dd->type == CUDA_R_16BF && s && s[0] == '1';
}

bool is_drelu(uint32_t e) { return e == CUBLASLT_EPILOGUE_DRELU || e == CUBLASLT_EPILOGUE_DRELU_BGRAD; }
bool has_aux(uint32_t e) { return e == CUBLASLT_EPILOGUE_RELU_AUX_BIAS || is_drelu(e); }
/* the bias pointer: read (BIAS, RELU_AUX_BIAS) or written (the bias gradients) */
bool has_bias(uint32_t e)
{
    return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_RELU_AUX_BIAS ||
           e == CUBLASLT_EPILOGUE_BGRADB || e == CUBLASLT_EPILOGUE_DRELU_BGRAD;
}

/* The checks of cublasLt.h this emulation relies on: NOT_SUPPORTED for a type combination or
 * epilogue outside the table (or not emulated), INVALID_VALUE for shapes that do not agree,
 * a leading dimension below the rows, a missing bias or aux pointer, or a ReLU bit-mask
 * leading dimension not divisible by 128 or below D's rows (CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD). */
cublasStatus_t validate(const char *who, const cublasLtMatmulDescOpaque *d,
                        const cublasLtMatrixLayoutOpaque *a, const cublasLtMatrixLayoutOpaque *b,
                        const cublasLtMatrixLayoutOpaque *c, const cublasLtMatrixLayoutOpaque *dd)
{
    if (!d || !a || !b || !c || !dd) {
        report(who, "a descriptor is NULL");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!types_supported(d, a, b, c, dd)) {
        report(who, "cuBLASLt has no matmul for A/B type %d, C %d, D %d, compute %d, scale %d",
               (int)a->type, (int)c->type, (int)dd->type, (int)d->compute, (int)d->scale);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const uint32_t e = d->epilogue;
    if (e != CUBLASLT_EPILOGUE_DEFAULT && !has_bias(e) && !is_drelu(e)) {
        report(who, "epilogue %u is not emulated (DEFAULT, BIAS, RELU_AUX_BIAS, DRELU, "
               "DRELU_BGRAD, BGRADB)", e);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (!bias_type_ok(d, dd)) {
        /* silent to the heuristic: dptrain's start-up probe asks on purpose (cuda/lt.cu) */
        if (strcmp(who, "cublasLtMatmulAlgoGetHeuristic") != 0)
            report(who, "bias type %d differs from D's type %d", d->bias_type, (int)dd->type);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (dd->type == CUDA_R_16BF && e != CUBLASLT_EPILOGUE_DEFAULT &&
        e != CUBLASLT_EPILOGUE_BIAS && e != CUBLASLT_EPILOGUE_RELU_AUX_BIAS) {
        report(who, "epilogue %u with a bf16 D (a bf16 bias gradient) is not emulated", e);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    const bool ta = d->transa != CUBLAS_OP_N, tb = d->transb != CUBLAS_OP_N;
    const uint64_t m = dd->rows, n = dd->cols, k = ta ? a->rows : a->cols;
    const char *bad = NULL;
    if ((ta ? a->cols : a->rows) != m || (tb ? b->rows : b->cols) != n ||
        (tb ? b->cols : b->rows) != k || c->rows != m || c->cols != n)
        bad = "the layouts' shapes do not agree with op(A) (m x k), op(B) (k x n), C and D (m x n)";
    else if (a->ld < (int64_t)a->rows || b->ld < (int64_t)b->rows || c->ld < (int64_t)m ||
             dd->ld < (int64_t)m)
        bad = "a leading dimension is below its matrix's rows";
    else if (has_bias(e) && !d->bias)
        bad = "the epilogue needs CUBLASLT_MATMUL_DESC_BIAS_POINTER";
    else if (has_aux(e) && !d->aux)
        bad = "the epilogue needs CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER";
    else if (has_aux(e) && (d->aux_ld % 128 != 0 || d->aux_ld < (int64_t)m))
        bad = "the ReLU bit-mask's EPILOGUE_AUX_LD must be divisible by 128 and >= D's rows";
    if (bad) {
        report(who, "%s (m %llu, n %llu, k %llu, aux_ld %lld)", bad, (unsigned long long)m,
               (unsigned long long)n, (unsigned long long)k, (long long)d->aux_ld);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    return CUBLAS_STATUS_SUCCESS;
}

size_t span_bytes(const cublasLtMatrixLayoutOpaque *l)
{
    if (l->rows == 0 || l->cols == 0)
        return 0;
    return ((l->cols - 1) * (size_t)l->ld + l->rows) * type_size(l->type);
}

/* Every byte the call touches inside one device allocation. */
bool in_bounds(const cublasLtMatmulDescOpaque *d, const void *A,
               const cublasLtMatrixLayoutOpaque *a, const void *B,
               const cublasLtMatrixLayoutOpaque *b, const void *D,
               const cublasLtMatrixLayoutOpaque *dd)
{
    static const char *who = "cublasLtMatmul";
    const int dev = MEM_DEVICE | MEM_PINNED;
    const uint32_t e = d->epilogue;
    size_t m = dd->rows, n = dd->cols;
    size_t bias_n = e == CUBLASLT_EPILOGUE_BGRADB ? n : m;
    size_t aux_bytes = has_aux(e) ? ((n - 1) * (size_t)d->aux_ld + m + 7) / 8 : 0;
    return check_range(who, "A", A, span_bytes(a), dev) &&
           check_range(who, "B", B, span_bytes(b), dev) &&
           check_range(who, "D", D, span_bytes(dd), dev) &&
           (!has_bias(e) || check_range(who, "bias", d->bias,
                                        bias_n * type_size((cudaDataType)bias_type(d, dd)), dev)) &&
           (!has_aux(e) || check_range(who, "aux (ReLU bit-mask)", d->aux, aux_bytes, dev));
}

float element(const void *p, cudaDataType t, size_t i)
{
    return t == CUDA_R_16BF ? __bfloat162float(((const __nv_bfloat16 *)p)[i])
                            : ((const float *)p)[i];
}

/* The epilogue on D (m x n, ld ldd) after the product, per cublasLt.h: BIAS adds bias[i] to row
 * i of every column; RELU_AUX_BIAS then applies max(x, 0) and stores bit i + j * aux_ld (LSB
 * first in each byte) set where x > 0; DRELU zeroes D where that bit is clear, and DRELU_BGRAD
 * also writes bias[i] = the sum of D's row i after that (the bias gradient of the layer the
 * mask is of, one per row of D), summed in double; BGRADB writes bias[j] = the sum over k of
 * op(B)(l, j), as B is stored (bf16 read as bf16), summed in double. */
void epilogue(const cublasLtMatmulDescOpaque &d, cudaDataType bias_t, const void *B,
              const cublasLtMatrixLayoutOpaque &b, float *D, size_t m, size_t n, size_t ldd)
{
    uint8_t *bits = (uint8_t *)d.aux;
    float *bias = (float *)d.bias;
    const bool adds = d.epilogue == CUBLASLT_EPILOGUE_BIAS || d.epilogue == CUBLASLT_EPILOGUE_RELU_AUX_BIAS;
    for (size_t j = 0; j < n && d.epilogue != CUBLASLT_EPILOGUE_BGRADB; j++)
        for (size_t i = 0; i < m; i++) {
            float &x = D[i + j * ldd];
            size_t e = i + j * (size_t)d.aux_ld;
            if (adds)
                x += element(d.bias, bias_t, i);
            if (d.epilogue == CUBLASLT_EPILOGUE_RELU_AUX_BIAS) {
                bits[e / 8] = (uint8_t)((bits[e / 8] & ~(1u << (e % 8))) | ((x > 0.0f) << (e % 8)));
                x = x > 0.0f ? x : 0.0f;
            } else if (is_drelu(d.epilogue) && !(bits[e / 8] >> (e % 8) & 1u)) {
                x = 0.0f;
            }
        }
    if (d.epilogue == CUBLASLT_EPILOGUE_DRELU_BGRAD)
        for (size_t i = 0; i < m; i++) {
            double s = 0.0;
            for (size_t j = 0; j < n; j++)
                s += D[i + j * ldd];
            bias[i] = (float)s;
        }
    if (d.epilogue != CUBLASLT_EPILOGUE_BGRADB)
        return;
    const bool tb = d.transb != CUBLAS_OP_N;
    size_t k = tb ? b.cols : b.rows;
    for (size_t j = 0; j < n; j++) {
        double s = 0.0;
        for (size_t l = 0; l < k; l++)
            s += element(B, b.type, tb ? j + l * (size_t)b.ld : l + j * (size_t)b.ld);
        bias[j] = (float)s;
    }
}

/* The queued work of one cublasLtMatmul: the product (as the emulated cuBLAS's), the epilogue,
 * and for a bf16 D the rounding of the float result. */
void run(const cublasLtMatmulDescOpaque &d, const cublasLtMatrixLayoutOpaque &a,
         const cublasLtMatrixLayoutOpaque &b, const cublasLtMatrixLayoutOpaque &dd, float al,
         float be, const void *A, const void *B, void *D)
{
    const bool ta = d.transa != CUBLAS_OP_N, tb = d.transb != CUBLAS_OP_N;
    int m = (int)dd.rows, n = (int)dd.cols, k = (int)(ta ? a.rows : a.cols);
    bool reads = k > 0 && al != 0.0f;
    const cudaDataType bias_t = (cudaDataType)bias_type(&d, &dd);
    if (dd.type == CUDA_R_16BF) {
        /* the float result after the bias and the ReLU, rounded to nearest even
         * (__float2bfloat16): the rounding is cuBLASLt's own and undocumented; this is the
         * conversion kernel's, which read the same float from an FP32 D before */
        std::vector<float> t((size_t)m * n);
        blas_gemm_bf16(ta, tb, m, n, k, al, A, (int)a.ld, B, (int)b.ld, 0.0f, t.data(), m,
                       reads);
        epilogue(d, bias_t, B, b, t.data(), dd.rows, dd.cols, dd.rows);
        for (size_t j = 0; j < dd.cols; j++)
            for (size_t i = 0; i < dd.rows; i++)
                ((__nv_bfloat16 *)D)[i + j * (size_t)dd.ld] = __float2bfloat16(t[i + j * dd.rows]);
        return;
    }
    if (a.type == CUDA_R_16BF)
        blas_gemm_bf16(ta, tb, m, n, k, al, A, (int)a.ld, B, (int)b.ld, be, (float *)D,
                       (int)dd.ld, reads);
    else
        blas_sgemm(ta, tb, m, n, k, al, (const float *)A, (int)a.ld, (const float *)B,
                   (int)b.ld, be, (float *)D, (int)dd.ld, reads,
                   d.compute == CUBLAS_COMPUTE_32F_FAST_TF32);
    epilogue(d, bias_t, B, b, (float *)D, dd.rows, dd.cols, (size_t)dd.ld);
}

} // namespace

extern "C" {

cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle)
{
    if (!handle)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (current_device() >= device_count())
        return CUBLAS_STATUS_NOT_INITIALIZED;
    void *h = new char[1];
    std::lock_guard<std::mutex> g(g_lock);
    g_handles.insert(h);
    *handle = (cublasLtHandle_t)h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle)
{
    std::lock_guard<std::mutex> g(g_lock);
    if (!handle || !g_handles.erase((const void *)handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    synchronize_all(); /* its queued matmuls first */
    delete[] (char *)(void *)handle;
    return CUBLAS_STATUS_SUCCESS;
}

size_t cublasLtGetVersion(void) { return CUBLAS_VERSION; }

cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc, cublasComputeType_t compute,
                                        cudaDataType scale)
{
    if (!desc)
        return CUBLAS_STATUS_INVALID_VALUE;
    *desc = new cublasLtMatmulDescOpaque{compute, scale, CUBLAS_OP_N, CUBLAS_OP_N,
                                         CUBLASLT_EPILOGUE_DEFAULT, NULL, NULL, 0, -1};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc)
{
    delete desc;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                              cublasLtMatmulDescAttributes_t attr,
                                              const void *buf, size_t bytes)
{
    static const char *who = "cublasLtMatmulDescSetAttribute";
    if (!desc)
        return CUBLAS_STATUS_INVALID_VALUE;
    void *field = NULL;
    size_t size = 0;
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_TRANSA: field = &desc->transa; size = sizeof(int32_t); break;
    case CUBLASLT_MATMUL_DESC_TRANSB: field = &desc->transb; size = sizeof(int32_t); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: field = &desc->epilogue; size = sizeof(uint32_t); break;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: field = &desc->bias; size = sizeof(void *); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: field = &desc->aux; size = sizeof(void *); break;
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: field = &desc->aux_ld; size = sizeof(int64_t); break;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: field = &desc->bias_type; size = sizeof(int32_t); break;
    default:
        report(who, "attribute %d is not emulated", (int)attr);
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (!buf || bytes != size) { /* cublasLt.h: "sizeInBytes doesn't match" */
        report(who, "attribute %d: %zu bytes given, its type has %zu", (int)attr, bytes, size);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if ((attr == CUBLASLT_MATMUL_DESC_TRANSA || attr == CUBLASLT_MATMUL_DESC_TRANSB) &&
        *(const int32_t *)buf != CUBLAS_OP_N && *(const int32_t *)buf != CUBLAS_OP_T)
        return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(field, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout, cudaDataType type,
                                          uint64_t rows, uint64_t cols, int64_t ld)
{
    if (!layout)
        return CUBLAS_STATUS_INVALID_VALUE;
    *layout = new cublasLtMatrixLayoutOpaque{type, rows, cols, ld};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout)
{
    delete layout;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref)
{
    if (!pref)
        return CUBLAS_STATUS_INVALID_VALUE;
    *pref = new cublasLtMatmulPreferenceOpaque{0};
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref)
{
    delete pref;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                    cublasLtMatmulPreferenceAttributes_t attr,
                                                    const void *buf, size_t bytes)
{
    if (!pref || !buf)
        return CUBLAS_STATUS_INVALID_VALUE;
    if (attr == CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES) {
        if (bytes != sizeof(uint64_t))
            return CUBLAS_STATUS_INVALID_VALUE;
        memcpy(&pref->max_workspace, buf, bytes);
        return CUBLAS_STATUS_SUCCESS;
    }
    return bytes == sizeof(uint32_t) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                                              cublasLtMatrixLayout_t Adesc,
                                              cublasLtMatrixLayout_t Bdesc,
                                              cublasLtMatrixLayout_t Cdesc,
                                              cublasLtMatrixLayout_t Ddesc,
                                              cublasLtMatmulPreference_t pref, int requested,
                                              cublasLtMatmulHeuristicResult_t results[],
                                              int *returned)
{
    if (!lt_handle_valid(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requested <= 0 || !results || !returned || !pref) /* cublasLt.h's INVALID_VALUE case */
        return CUBLAS_STATUS_INVALID_VALUE;
    *returned = 0;
    cublasStatus_t s = validate("cublasLtMatmulAlgoGetHeuristic", desc, Adesc, Bdesc, Cdesc, Ddesc);
    if (s != CUBLAS_STATUS_SUCCESS)
        return s;
    memset(&results[0], 0, sizeof results[0]);
    results[0].algo.data[0] = ALGO_TAG;
    results[0].workspaceSize = 0; /* the emulated algorithm needs none */
    results[0].state = CUBLAS_STATUS_SUCCESS;
    results[0].wavesCount = 1.0f;
    *returned = 1;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasLtMatmul(cublasLtHandle_t handle, cublasLtMatmulDesc_t desc,
                              const void *alpha, const void *A, cublasLtMatrixLayout_t Adesc,
                              const void *B, cublasLtMatrixLayout_t Bdesc, const void *beta,
                              const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                              cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t *algo,
                              void *workspace, size_t workspaceSizeInBytes, cudaStream_t stream)
{
    static const char *who = "cublasLtMatmul";
    if (!lt_handle_valid(handle))
        return CUBLAS_STATUS_NOT_INITIALIZED;
    cublasStatus_t s = validate(who, desc, Adesc, Bdesc, Cdesc, Ddesc);
    if (s != CUBLAS_STATUS_SUCCESS)
        return s;
    if (!alpha || !beta || (algo && algo->data[0] != ALGO_TAG) || !stream_valid(stream) ||
        (workspaceSizeInBytes && !check_range(who, "workspace", workspace, workspaceSizeInBytes,
                                              MEM_DEVICE))) {
        report(who, "alpha or beta NULL, an algorithm the heuristic did not return, an unknown "
               "stream or a workspace outside device memory");
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    const float al = *(const float *)alpha, be = *(const float *)beta;
    if ((C != D || Ddesc->type == CUDA_R_16BF) && be != 0.0f) {
        report(who, "C differs from D or is bf16, with beta != 0: not emulated (dptrain passes "
               "C = D, and beta = 0 with a bf16 D)");
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (!in_bounds(desc, A, Adesc, B, Bdesc, D, Ddesc))
        return CUBLAS_STATUS_INVALID_VALUE;
    /* the descriptors may be destroyed once the call returns: the queued work keeps copies */
    const cublasLtMatmulDescOpaque d = *desc;
    const cublasLtMatrixLayoutOpaque a = *Adesc, b = *Bdesc, dd = *Ddesc;
    enqueue(stream, [=] { run(d, a, b, dd, al, be, A, B, D); });
    return CUBLAS_STATUS_SUCCESS;
}

} /* extern "C" */
