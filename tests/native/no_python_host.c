/* A VapourSynth host without Python: it must get a clear error from slomo.Interpolate, not a crash. */
#include <stdio.h>
#include <string.h>

#include "VapourSynth4.h"

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s PLUGIN.so\n", argv[0]);
        return 2;
    }
    const VSAPI *vsapi = getVapourSynthAPI(VAPOURSYNTH_API_VERSION);
    if (!vsapi)
        return 3;
    VSCore *core = vsapi->createCore(ccfDisableAutoLoading);
    VSMap *args = vsapi->createMap();
    vsapi->mapSetData(args, "path", argv[1], -1, dtUtf8, maReplace);
    VSMap *res = vsapi->invoke(vsapi->getPluginByNamespace("std", core), "LoadPlugin", args);
    if (vsapi->mapGetError(res)) {
        printf("load failed: %s\n", vsapi->mapGetError(res));
        return 4;
    }
    vsapi->freeMap(res);
    vsapi->clearMap(args);
    res = vsapi->invoke(vsapi->getPluginByNamespace("std", core), "BlankClip", args);
    VSNode *clip = vsapi->mapGetNode(res, "clip", 0, NULL);
    vsapi->freeMap(res);
    vsapi->mapConsumeNode(args, "clip", clip, maReplace);
    res = vsapi->invoke(vsapi->getPluginByNamespace("slomo", core), "Interpolate", args);
    const char *error = vsapi->mapGetError(res);
    printf("%s\n", error ? error : "no error");
    vsapi->freeMap(res);
    vsapi->freeMap(args);
    vsapi->freeCore(core);
    return error ? 0 : 1;
}
