/*
 * The `slomo` VapourSynth plugin: a native shim that forwards to the Python implementation.
 *
 * VapourSynth has no Python-plugin API. This plugin registers `slomo.Interpolate` and
 * `slomo.Register(func)`. The Python package registers its implementation (a VSFunction) on each
 * core; `Interpolate` forwards its argument map to it with callFunction. When nothing is registered
 * yet, the shim finds the Python C API in the host process at run time (it never links libpython),
 * imports `vs_superslomo.vsplugin` and asks it to register on the current core.
 *
 * Per-plugin-instance state: VapourSynth loads plugins per core, so each core has its own state.
 */

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "VapourSynth4.h"

#define SLOMO_PLUGIN_VERSION VS_MAKE_VERSION(0, 1)

typedef struct {
    pthread_mutex_t lock;   /* guards func only; never held across callFunction or Python */
    VSFunction *func;       /* the Python implementation registered for this core, or NULL */
} PluginState;

/* Set while this thread is inside the Python bootstrap: a re-entrant call fails instead of looping. */
static __thread int in_bootstrap = 0;

typedef int (*PyIsInitializedFn)(void);
typedef int (*PyGILStateEnsureFn)(void);
typedef void (*PyGILStateReleaseFn)(int);
typedef void *(*PyImportModuleFn)(const char *);
typedef void *(*PyObjectCallMethodFn)(void *, const char *, const char *, ...);
typedef void (*PyDecRefFn)(void *);
typedef void *(*PyErrOccurredFn)(void);
typedef void (*PyErrFetchFn)(void **, void **, void **);
typedef void *(*PyObjectStrFn)(void *);
typedef const char *(*PyUnicodeAsUTF8Fn)(void *);

static void *python_symbol(const char *name) {
    return dlsym(RTLD_DEFAULT, name);
}

/* Imports the package and calls its registration hook; returns NULL or an error message. */
static const char *bootstrap_python(char *buffer, size_t size) {
    PyIsInitializedFn is_initialized = (PyIsInitializedFn)python_symbol("Py_IsInitialized");
    PyGILStateEnsureFn gil_ensure = (PyGILStateEnsureFn)python_symbol("PyGILState_Ensure");
    PyGILStateReleaseFn gil_release = (PyGILStateReleaseFn)python_symbol("PyGILState_Release");
    PyImportModuleFn import_module = (PyImportModuleFn)python_symbol("PyImport_ImportModule");
    PyObjectCallMethodFn call_method = (PyObjectCallMethodFn)python_symbol("PyObject_CallMethod");
    PyDecRefFn decref = (PyDecRefFn)python_symbol("Py_DecRef");
    PyErrFetchFn err_fetch = (PyErrFetchFn)python_symbol("PyErr_Fetch");
    PyObjectStrFn object_str = (PyObjectStrFn)python_symbol("PyObject_Str");
    PyUnicodeAsUTF8Fn as_utf8 = (PyUnicodeAsUTF8Fn)python_symbol("PyUnicode_AsUTF8");

    if (!is_initialized || !gil_ensure || !gil_release || !import_module || !call_method || !decref ||
        !err_fetch || !object_str || !as_utf8 || !is_initialized()) {
        return "slomo: this host has no Python interpreter; the filter is implemented in Python "
               "(use vspipe, vs-preview, or a Python script with the vs_superslomo package installed)";
    }

    const char *error = NULL;
    int gil = gil_ensure();
    void *module = import_module("vs_superslomo.vsplugin");
    void *result = module ? call_method(module, "register_current_core", NULL) : NULL;
    if (!result) {
        void *type = NULL, *value = NULL, *traceback = NULL;
        err_fetch(&type, &value, &traceback);
        const char *text = NULL;
        void *str = value ? object_str(value) : NULL;
        if (str)
            text = as_utf8(str);
        snprintf(buffer, size, "slomo: cannot load the Python implementation (vs_superslomo): %s",
                 text ? text : "unknown error");
        error = buffer;
        if (str)
            decref(str);
        if (type)
            decref(type);
        if (value)
            decref(value);
        if (traceback)
            decref(traceback);
    } else {
        decref(result);
    }
    if (module)
        decref(module);
    gil_release(gil);
    return error;
}

/* The key under which the Python side returns a user error's text (vs_superslomo.vsplugin.ERROR_KEY). */
#define USER_ERROR_KEY "slomo_error"

/*
 * User errors come back as USER_ERROR_KEY. Anything else raised in Python (a bug) arrives as its whole
 * traceback; callers see its last line, without VapourSynth's own prefixes.
 */
static const char *original_message(const char *error) {
    static __thread char buffer[1024];
    size_t len = strlen(error);
    while (len > 0 && (error[len - 1] == '\n' || error[len - 1] == ' '))
        len--;
    size_t start = len;
    while (start > 0 && error[start - 1] != '\n')
        start--;
    size_t n = len - start < sizeof buffer - 1 ? len - start : sizeof buffer - 1;
    memcpy(buffer, error + start, n);
    buffer[n] = '\0';
    const char *text = buffer;
    const char *prefixes[] = {"vapoursynth.Error: ", "Error: ", "slomo: "};
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        size_t plen = strlen(prefixes[i]);
        if (strncmp(text, prefixes[i], plen) == 0)
            text += plen;
    }
    return text;
}

static VSFunction *take_function(PluginState *state, const VSAPI *vsapi) {
    pthread_mutex_lock(&state->lock);
    VSFunction *func = state->func ? vsapi->addFunctionRef(state->func) : NULL;
    pthread_mutex_unlock(&state->lock);
    return func;
}

static void VS_CC interpolate_create(const VSMap *in, VSMap *out, void *user_data, VSCore *core,
                                     const VSAPI *vsapi) {
    (void)core;
    PluginState *state = (PluginState *)user_data;
    VSFunction *func = take_function(state, vsapi);
    if (!func) {
        if (in_bootstrap) {
            vsapi->mapSetError(out, "slomo: the Python implementation did not register itself");
            return;
        }
        char buffer[1024];
        in_bootstrap = 1;
        const char *error = bootstrap_python(buffer, sizeof buffer);
        in_bootstrap = 0;
        if (error) {
            vsapi->mapSetError(out, error);
            return;
        }
        func = take_function(state, vsapi);
        if (!func) {
            vsapi->mapSetError(out, "slomo: the Python implementation did not register itself on this core");
            return;
        }
    }

    VSMap *result = vsapi->createMap();
    vsapi->callFunction(func, in, result);
    vsapi->freeFunction(func);
    const char *error = vsapi->mapGetError(result);
    int no_reason = 1;
    const char *reason = error ? NULL : vsapi->mapGetData(result, USER_ERROR_KEY, 0, &no_reason);
    if (!no_reason && reason) {
        char message[1024];
        snprintf(message, sizeof message, "slomo.Interpolate: %s", reason);
        vsapi->mapSetError(out, message);
    } else if (error) {
        char message[1024];
        snprintf(message, sizeof message, "slomo.Interpolate: %s", original_message(error));
        vsapi->mapSetError(out, message);
    } else {
        int err = 0;
        VSNode *node = vsapi->mapGetNode(result, "val", 0, &err);
        if (err || !node)
            node = vsapi->mapGetNode(result, "clip", 0, &err);
        if (err || !node)
            vsapi->mapSetError(out, "slomo: the Python implementation returned no clip");
        else
            vsapi->mapConsumeNode(out, "clip", node, maAppend);
    }
    vsapi->freeMap(result);
}

static void VS_CC register_create(const VSMap *in, VSMap *out, void *user_data, VSCore *core,
                                  const VSAPI *vsapi) {
    (void)out;
    (void)core;
    PluginState *state = (PluginState *)user_data;
    int err = 0;
    VSFunction *func = vsapi->mapGetFunction(in, "func", 0, &err);
    if (err)
        func = NULL; /* Register() without a function unregisters */
    pthread_mutex_lock(&state->lock);
    VSFunction *old = state->func;
    state->func = func;
    pthread_mutex_unlock(&state->lock);
    if (old)
        vsapi->freeFunction(old);
}

VS_EXTERNAL_API(void) VapourSynthPluginInit2(VSPlugin *plugin, const VSPLUGINAPI *vspapi) {
    PluginState *state = (PluginState *)calloc(1, sizeof(PluginState));
    if (!state)
        return;
    pthread_mutex_init(&state->lock, NULL);
    vspapi->configPlugin("com.github.vs-superslomo", "slomo", "Super SloMo frame interpolation",
                         SLOMO_PLUGIN_VERSION, VAPOURSYNTH_API_VERSION, 0, plugin);
    vspapi->registerFunction(
        "Interpolate",
        "clip:vnode;factor:int:opt;fps_num:int:opt;fps_den:int:opt;model:data:opt;device:data:opt;"
        "fp16:int:opt;flow_scale:float:opt;sc:int:opt;sc_threshold:float:opt;threads:int:opt;dis_preset:data:opt;"
        "timecodes:data:opt;dedup:int:opt;dedup_threshold:float:opt;dedup_max_run:int:opt;fallback:int:opt;"
        "quadratic:int:opt;refine:int:opt;",
        "clip:vnode;", interpolate_create, state, plugin);
    vspapi->registerFunction("Register", "func:func:opt;", "", register_create, state, plugin);
}
