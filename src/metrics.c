/* metrics.jsonl lines and the epoch table. */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <unistd.h>

static void num(FILE *f, const char *key, double v, int last)
{
    if (isfinite(v))
        fprintf(f, "\"%s\": %.9g%s", key, v, last ? "" : ", ");
    else
        fprintf(f, "\"%s\": null%s", key, last ? "" : ", ");
}

double dpt_metrics_rss_mb(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages_total = 0, pages_resident = 0;
    int ok = f && fscanf(f, "%ld %ld", &pages_total, &pages_resident) == 2;
    if (f)
        fclose(f);
    return ok ? (double)pages_resident * (double)sysconf(_SC_PAGESIZE) / 1048576.0 : NAN;
}

int dpt_metrics_append(FILE *f, const dpt_epoch_metrics *m)
{
    fprintf(f, "{\"epoch\": %d, \"step\": %lld, ", m->epoch, (long long)m->step);
    num(f, "lr", m->lr, 0);
    num(f, "train_loss", m->train_loss, 0);
    num(f, "train_accuracy", m->train_accuracy, 0);
    num(f, "val_loss", m->val_loss, 0);
    num(f, "val_accuracy", m->val_accuracy, 0);
    if (!isnan(m->test_accuracy)) {
        num(f, "test_loss", m->test_loss, 0);
        num(f, "test_accuracy", m->test_accuracy, 0);
    }
    num(f, "samples_per_s", m->samples_per_s, 0);
    num(f, "time_s", m->time_s, 0);
    num(f, "compute_s", m->compute_s, 0);
    num(f, "comm_s", m->comm_s, 0);
    num(f, "data_s", m->data_s, 0);
    num(f, "rss_mb", m->rss_mb, 0);
    fprintf(f, "\"ranks\": %d}\n", m->ranks);
    if (fflush(f) != 0)
        return -1;
    fsync(fileno(f));
    return ferror(f) ? -1 : 0;
}

void dpt_metrics_print_header(FILE *out)
{
    fprintf(out, "%6s %8s %9s %10s %9s %9s %8s %8s %10s %8s\n", "epoch", "step", "lr",
            "train_loss", "train_acc", "val_loss", "val_acc", "test_acc", "samples/s", "time");
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
