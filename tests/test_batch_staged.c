/* The staged batch path (src/batch.c) on the CUDA backend with steps that never synchronize, as a
 * GPU runs them when nothing reads a result back: the trainer's per-step loss readback hides
 * ordering bugs between the pinned buffers, the copy stream and the compute stream, which this
 * test exposes under the emulation's asynchronous streams (DPT_EMU_ASYNC=1). */
#include <criterion/criterion.h>

#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "batch.h"
#include "data.h"
#ifdef DPT_HAVE_CUDA
#include "cuda_backend.h"
#endif

#ifdef DPT_HAVE_CUDA
enum { N = 12, I = 4, ROWS = 2, STEPS = N / ROWS };

/* Four steps' batches, each consumed on the device by a column sum queued behind its copy and
 * nothing synchronized until the end: a pinned slot refilled before its copy ran (a missing
 * host_wait_slot) sends the later batch's rows, and a column sum shows it. */
Test(batch_staged, steps_without_a_synchronize_see_their_own_rows, .timeout = 120)
{
    setenv("DPT_EMU_ASYNC", "1", 1); /* queued work runs at synchronization points only */
    if (dpt_cuda_device_count() == 0)
        cr_skip_test("no CUDA device visible");
    dpt_backend gpu;
    dpt_error err = {0};
    cr_assert_eq(dpt_cuda_backend_init(&gpu, 0, 0, &err), DPT_OK, "%s", err.msg);
    float x[N * I];
    int32_t y[N];
    for (int r = 0; r < N; r++) {
        y[r] = r % 3;
        for (int j = 0; j < I; j++)
            x[r * I + j] = (float)(10 * r + j);
    }
    dpt_dataset train = {.n = N, .n_total = N, .features = I, .classes = 3, .x = x, .y = y};
    dpt_batch_spec spec = {.rows = ROWS, .I = I, .row0 = 0, .batch_size = ROWS,
                           .steps_per_epoch = STEPS, .sharded = 0, .shuffle = 0, .seed = 1,
                           .rank = 0, .resident = DPT_RESIDENT_OFF};
    float *xb = gpu.alloc(&gpu, ROWS * I * sizeof(float));
    int32_t *yb = gpu.alloc(&gpu, ROWS * sizeof(int32_t));
    float *sums = gpu.alloc(&gpu, STEPS * I * sizeof(float)); /* (STEPS, I) */
    dpt_batch b;
    cr_assert_eq(dpt_batch_init(&b, &spec, &gpu, &train, xb, yb, &err), DPT_OK, "%s", err.msg);
    cr_assert(b.staged, "data.device_resident off must stage the batches");
    for (int s = 0; s < STEPS; s++) {
        const float *bx;
        const int32_t *by;
        dpt_batch_next(&b, 0, s, s, &bx, &by);
        gpu.bias_grad(&gpu, bx, ROWS, I, sums + s * I);
        dpt_batch_done(&b, s);
    }
    float got[STEPS * I];
    gpu.download(&gpu, got, sums, sizeof got);
    for (int s = 0; s < STEPS; s++)
        for (int j = 0; j < I; j++) {
            float want = 0.0f; /* rows ROWS*s .. ROWS*s + ROWS - 1, unshuffled */
            for (int r = ROWS * s; r < ROWS * (s + 1); r++)
                want += x[r * I + j];
            cr_expect_eq(got[s * I + j], want, "step %d column %d: %g, its rows sum to %g", s, j,
                         got[s * I + j], want);
        }
    dpt_batch_free(&b);
    gpu.free(&gpu, sums);
    gpu.free(&gpu, xb);
    gpu.free(&gpu, yb);
    gpu.destroy(&gpu);
}
#else
Test(batch_staged, needs_a_cuda_backend)
{
    cr_skip_test("built without a CUDA backend");
}
#endif
