/* metrics.jsonl lines (through the JSON writer of src/json.c) and the epoch table. */
#include "metrics.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

#include "json.h"

double dpt_metrics_rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages_total = 0, pages_resident = 0;
    int ok = f && fscanf(f, "%ld %ld", &pages_total, &pages_resident) == 2;
    if (f)
        fclose(f);
    return ok ? (double)pages_resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0 : NAN;
}

/* Nine significant digits: enough for a float (a loss, an accuracy) to read back exactly. */
int dpt_metrics_append(FILE *f, const dpt_epoch_metrics *m)
{
    char line[1024];
    dpt_json j;
    dpt_json_init(&j, line, sizeof line, 1);
    dpt_json_object(&j, NULL);
    dpt_json_int(&j, "epoch", m->epoch);
    dpt_json_int(&j, "step", m->step);
    dpt_json_double_g(&j, "lr", m->lr, 9);
    dpt_json_double_g(&j, "train_loss", m->train_loss, 9);
    dpt_json_double_g(&j, "train_accuracy", m->train_accuracy, 9);
    dpt_json_double_g(&j, "val_loss", m->val_loss, 9);
    dpt_json_double_g(&j, "val_accuracy", m->val_accuracy, 9);
    if (m->regression) {
        dpt_json_double_g(&j, "val_rmse", m->val_rmse, 9);
        dpt_json_double_g(&j, "val_mae", m->val_mae, 9);
        dpt_json_double_g(&j, "val_r2", m->val_r2, 9);
    }
    if (!isnan(m->test_accuracy) || (m->regression && !isnan(m->test_loss))) {
        dpt_json_double_g(&j, "test_loss", m->test_loss, 9);
        dpt_json_double_g(&j, "test_accuracy", m->test_accuracy, 9);
    }
    if (m->regression && !isnan(m->test_loss)) {
        dpt_json_double_g(&j, "test_rmse", m->test_rmse, 9);
        dpt_json_double_g(&j, "test_mae", m->test_mae, 9);
        dpt_json_double_g(&j, "test_r2", m->test_r2, 9);
    }
    dpt_json_double_g(&j, "samples_per_s", m->samples_per_s, 9);
    dpt_json_double_g(&j, "time_s", m->time_s, 9);
    dpt_json_double_g(&j, "compute_s", m->compute_s, 9);
    dpt_json_double_g(&j, "comm_s", m->comm_s, 9);
    dpt_json_double_g(&j, "data_s", m->data_s, 9);
    dpt_json_double_g(&j, "rss_mb", m->rss_mb, 9);
    dpt_json_int(&j, "ranks", m->ranks);
    dpt_json_end(&j);
    dpt_json_tail(&j, "\n");
    if (j.len >= sizeof line || fputs(line, f) == EOF || fflush(f) != 0)
        return -1;
    fsync(fileno(f));
    return ferror(f) ? -1 : 0;
}

void dpt_metrics_print_header(FILE *out)
{
    fprintf(out, "%6s %8s %9s %10s %9s %9s %8s %8s %10s %8s\n", "epoch", "step", "lr",
            "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "samples/s", "time");
}

void dpt_metrics_print_header_regression(FILE *out)
{
    fprintf(out, "%6s %8s %9s %10s %9s %9s %8s %9s %8s %10s %8s\n", "epoch", "step", "lr",
            "train_loss", "val_loss", "val_rmse", "val_r2", "test_rmse", "test_r2", "samples/s",
            "time");
}

/* A number in width columns, "-" for NAN. */
static void num(FILE *out, double v, int width, int prec)
{
    if (isnan(v))
        fprintf(out, " %*s", width, "-");
    else
        fprintf(out, " %*.*f", width, prec, v);
}

static void print_row_regression(FILE *out, const dpt_epoch_metrics *m)
{
    fprintf(out, "%6d %8lld %9.3g %10.4f", m->epoch, (long long)m->step, m->lr, m->train_loss);
    num(out, m->val_loss, 9, 4);
    num(out, m->val_rmse, 9, 4);
    num(out, m->val_r2, 8, 4);
    num(out, m->test_rmse, 9, 4);
    num(out, m->test_r2, 8, 4);
    fprintf(out, " %10.0f %7.1fs\n", m->samples_per_s, m->time_s);
    fflush(out);
}

static void pct(FILE *out, double v, int width)
{
    if (isnan(v))
        fprintf(out, " %*s", width, "-");
    else
        fprintf(out, " %*.2f%%", width - 1, 100.0 * v);
}

void dpt_metrics_print_row(FILE *out, const dpt_epoch_metrics *m)
{
    if (m->regression) {
        print_row_regression(out, m);
        return;
    }
    fprintf(out, "%6d %8lld %9.3g %10.4f", m->epoch, (long long)m->step, m->lr, m->train_loss);
    pct(out, m->train_accuracy, 9);
    if (isnan(m->val_loss))
        fprintf(out, " %9s", "-");
    else
        fprintf(out, " %9.4f", m->val_loss);
    pct(out, m->val_accuracy, 8);
    pct(out, m->test_accuracy, 8);
    fprintf(out, " %10.0f %7.1fs\n", m->samples_per_s, m->time_s);
    fflush(out);
}

void dpt_regress_sums_add(double *sums, int T, const float *pred, const float *table,
                          const int32_t *idx, int rows, const double *mean, const double *std)
{
    for (int i = 0; i < rows; i++) {
        const float *t = table + (size_t)(idx ? idx[i] : i) * T;
        for (int k = 0; k < T; k++) {
            double p = pred[(size_t)i * T + k], v = t[k];
            if (mean) {
                p = p * std[k] + mean[k];
                v = v * std[k] + mean[k];
            }
            double *s = sums + 1 + 4 * (size_t)k;
            s[0] += (p - v) * (p - v);
            s[1] += fabs(p - v);
            s[2] += v;
            s[3] += v * v;
        }
    }
    sums[0] += rows;
}

void dpt_regress_metrics(const double *sums, int T, double *rmse, double *mae, double *r2)
{
    const double n = sums[0];
    double sse = 0.0, sae = 0.0, r2_sum = 0.0;
    for (int k = 0; k < T; k++) {
        const double *s = sums + 1 + 4 * (size_t)k;
        sse += s[0];
        sae += s[1];
        double sst = s[3] - s[2] * s[2] / n;
        r2_sum += sst > 0 ? 1.0 - s[0] / sst : NAN;
    }
    *rmse = n > 0 && T > 0 ? sqrt(sse / (n * T)) : NAN;
    *mae = n > 0 && T > 0 ? sae / (n * T) : NAN;
    *r2 = n > 0 && T > 0 ? r2_sum / T : NAN;
}
