/* model.json: what inference needs beside checkpoint.bin's weights (task, widths, activation,
 * how the training read its data, feature and class names, the scaling statistics). Written
 * atomically by rank 0 when training starts; read back by predict, eval and export. JSON is
 * read with libyaml (JSON is YAML's flow style), so no second parser is needed. */
#ifndef DPT_MODEL_INFO_H
#define DPT_MODEL_INFO_H

#include "config.h"
#include "data.h"
#include "error.h"

#define DPT_MODEL_INFO_VERSION 1

typedef struct {
    int n_layers;                       /* L */
    int widths[DPT_MAX_LAYERS + 1];     /* widths[0] = I features, widths[L] = C classes */
    dpt_activation activation;
    dpt_loss loss;
    dpt_data_format format;             /* the training data's format */
    dpt_scaling scaling;
    int csv_header;                     /* data.csv_header as the training had it */
    char label_column[DPT_PATH_MAX];    /* data.label_column, data.feature_columns as given */
    char feature_columns[DPT_PATH_MAX];
    char *label_name;                   /* a CSV header's label name, or NULL */
    char **feature_names;               /* (I) or NULL */
    char **class_names;                 /* (C) or NULL: integer class ids */
    double *mean, *std;                 /* (I) standardize statistics, or NULL */
    dpt_task task;                      /* regression: widths[L] = T targets */
    char **target_names;                /* (T) a regression's target column names, or NULL */
    double *t_mean, *t_std;             /* (T) data.target_scaling standardize, or NULL */
    dpt_missing missing;                /* data.missing (absent in older files: error) */
    double *fill;                       /* (I) data.missing mean: the training's means */
    dpt_precision precision;            /* train.precision (absent in older files: fp32) */
    double huber_delta;                 /* model.huber_delta (absent in older files: 1) */
} dpt_model_info;

/* Writes what cfg and the loaded data say (on rank 0) to path atomically. */
int dpt_model_info_save(const char *path, const dpt_config *cfg, const dpt_data *d,
                        dpt_error *err);

/* Reads path into mi (owned; dpt_model_info_free). DPT_EUSAGE naming the file and what is
 * missing or wrong. */
int dpt_model_info_load(const char *path, dpt_model_info *mi, dpt_error *err);

void dpt_model_info_free(dpt_model_info *mi);

#endif
