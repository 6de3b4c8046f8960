/*
 * The program of the self-contained esi-cli: CPython embedded with a fixed, isolated configuration.
 * The static launcher (hack/esi-cli-launcher.c) runs it through the bundle's own dynamic loader:
 *
 *   _internal/ld-linux-x86-64.so.2 --library-path _internal _internal/esi-cli ARGS...
 *
 * Compared with `python -I -S -c ...`, embedding decides what the command line cannot:
 *   - no locale coercion: `python` sets LC_CTYPE=C.UTF-8 in its own environment when the image has no
 *     locale, and `esi-cli exec` would hand that on to the application;
 *   - UTF-8 mode always, so arguments, variables and file names round-trip whatever the image's locale;
 *   - the module path is the bundle's own (_internal/lib/python3.11 and its lib-dynload) and nothing
 *     else: no site-packages, no PYTHON* variable, no current directory, no landmark search.
 * The bundle's folder is where this program lives: the launcher passes its absolute path as argv[0].
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#ifndef STDLIB_NAME
#error "build with -DSTDLIB_NAME='\"python3.11\"' (the folder name of the bundle's standard library)"
#endif

/* The entry point, as the console script `esi-cli = "cli.main:main"`; `sys.frozen` tells cli.install
 * and cli.exec that this is the self-contained build. The cycle collector starts off: imports make
 * tens of thousands of objects and it would walk them again and again (about 5% of a pod's fetch),
 * while a one-shot run exits before its garbage matters; `fetch --refresh-interval`, which keeps
 * running, turns it back on (cli/commands.py). */
static const wchar_t ENTRY[] =
    L"import gc; gc.disable(); import sys; sys.frozen = True; from cli.main import main; sys.exit(main())";

static int fail(const char *what, PyStatus status)
{
    fprintf(stderr, "esi-cli: %s: %s\n", what, status.err_msg ? status.err_msg : "failed");
    return 127;
}

static PyStatus append_path(PyConfig *config, const char *contents, const char *relative)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/%s", contents, relative) >= (int)sizeof path) {
        return PyStatus_Error("the bundle's path is too long");
    }
    wchar_t *wide = Py_DecodeLocale(path, NULL);
    if (wide == NULL) {
        return PyStatus_NoMemory();
    }
    PyStatus status = PyWideStringList_Append(&config->module_search_paths, wide);
    PyMem_RawFree(wide);
    return status;
}

int main(int argc, char **argv)
{
    char program[PATH_MAX];
    if (argc < 1 || realpath(argv[0], program) == NULL) {
        fprintf(stderr, "esi-cli: cannot find the bundle's folder from %s\n", argc > 0 ? argv[0] : "(none)");
        return 127;
    }
    const char *contents = dirname(program);
    /* The process is the loader running this program, so ps, top and pgrep would show it as
     * "ld-linux-x86-64"; the name they show is the one set here. */
    prctl(PR_SET_NAME, "esi-cli", 0, 0, 0);

    PyPreConfig preconfig;
    PyPreConfig_InitIsolatedConfig(&preconfig);
    preconfig.utf8_mode = 1;
    PyStatus status = Py_PreInitialize(&preconfig);
    if (PyStatus_Exception(status)) {
        return fail("cannot start Python", status);
    }

    PyConfig config;
    PyConfig_InitIsolatedConfig(&config);
    config.site_import = 0;
    config.write_bytecode = 0;
    config.module_search_paths_set = 1;
    status = PyConfig_SetBytesString(&config, &config.home, contents);
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesString(&config, &config.program_name, argv[0]);
    }
    if (!PyStatus_Exception(status)) {
        status = append_path(&config, contents, "lib/" STDLIB_NAME);
    }
    if (!PyStatus_Exception(status)) {
        status = append_path(&config, contents, "lib/" STDLIB_NAME "/lib-dynload");
    }
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetString(&config, &config.run_command, ENTRY);
    }
    if (!PyStatus_Exception(status)) {
        status = PyConfig_SetBytesArgv(&config, argc, argv);
    }
    if (!PyStatus_Exception(status)) {
        status = Py_InitializeFromConfig(&config);
    }
    PyConfig_Clear(&config);
    if (PyStatus_Exception(status)) {
        if (PyStatus_IsExit(status)) {
            return status.exitcode;
        }
        return fail("cannot start Python", status);
    }
    return Py_RunMain();
}
