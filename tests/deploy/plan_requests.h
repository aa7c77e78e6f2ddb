// A plan request for a model of tests/data/deploy on a cluster shape, shared by the deployment suites.
#pragma once

#include <QtGlobal>

#include "engine/deploy/deployment_plan.h"

inline mwb::deploy::PlanRequest plan_request(const char* model, const char* gpu, int64_t per_node, int64_t nodes, int64_t context,
                                             int64_t concurrency) {
    auto r = mwb::deploy::plan_request_for(std::string(MWB_TEST_DATA) + "/deploy/" + model);
    if (!r) qFatal("%s", r.error().message.c_str());
    r->gpu = *mwb::deploy::find_gpu(gpu);
    r->gpus_per_node = per_node;
    r->nodes = nodes;
    r->context = context;
    r->concurrency = concurrency;
    return r.value();
}
