// ncnn-l2norm for ncnn's C API (c_api.h).
#pragma once

#include "c_api.h"

#ifdef __cplusplus
extern "C" {
#endif

// Registers the L2Norm layer on `net` under `type` ("L2Norm" when NULL; the
// string is copied). Call before ncnn_net_load_param. Returns 0 or an ncnn
// error code.
int ncnn_l2norm_register(ncnn_net_t net, const char* type);

#ifdef __cplusplus
} /* extern "C" */
#endif
