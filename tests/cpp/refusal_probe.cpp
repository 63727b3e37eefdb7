// Does this ncnn refuse a bad model cleanly? Net::load_param must return an
// error for a layer type nobody registered and for a layer whose load_param
// fails, and the Net must then be destroyed without a crash. Neither involves
// our layer: the tests of models ncnn must refuse skip when this fails (see
// tests/common/mod.rs). ncnn 1.0.20250503 fails both ways: it crashes in
// Net::clear on the layers it has not created yet, and it carries on past a
// layer's failed load_param, leaving a null layer that crashes ~Net.
//
// Prints one line per case; exit status 0 when both are refused cleanly, 1
// when one is accepted (a crash kills it with a signal).

#include "layer.h"
#include "net.h"

#include <stdio.h>
#include <string>

class RefusesParams : public ncnn::Layer
{
public:
    virtual int load_param(const ncnn::ParamDict& /*pd*/)
    {
        return -1;
    }
};

static ncnn::Layer* refuses_params_creator(void* /*userdata*/)
{
    return new RefusesParams;
}

// 1 when load_param refused the one-layer model of `type` (and ~Net survived).
static int refused(const char* what, const char* type, bool registered)
{
    printf("%s: ", what); // before, so a crash shows where
    fflush(stdout);
    int ret;
    {
        ncnn::Net net;
        if (registered)
            net.register_custom_layer(type, refuses_params_creator);
        const std::string param = std::string("7767517\n2 2\nInput data 0 1 data\n") + type + " x 1 1 data out\n";
        ret = net.load_param_mem(param.c_str());
    }
    printf("load_param returned %d, Net destroyed\n", ret);
    fflush(stdout);
    return ret != 0;
}

int main()
{
    const int unregistered = refused("unregistered layer type", "NoSuchLayerType", false);
    const int failing = refused("layer whose load_param fails", "RefusesParams", true);
    const int ok = unregistered && failing;
    printf("%s\n", ok ? "refused cleanly" : "accepted a model it should refuse");
    return ok ? 0 : 1;
}
