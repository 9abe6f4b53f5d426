/* dptrain export: a run's weights as a safetensors file (https://github.com/huggingface/safetensors)
 * that PyTorch and other frameworks load without dptrain: tensors layers.N.weight (O, I) and
 * layers.N.bias (O) in nn.Linear's layout, model.json's content in the header's metadata. */
#ifndef DPT_EXPORT_H
#define DPT_EXPORT_H

#include "error.h"

/* Writes RUN_DIR's model.json and checkpoint.bin as safetensors to output, atomically. */
int dpt_export_safetensors(const char *run_dir, const char *output, dpt_error *err);

#endif
