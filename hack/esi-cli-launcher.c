/*
 * The entry point of the self-contained esi-cli: a static executable (built with musl-gcc) that runs
 * the bundle's embedded Python through the bundle's own dynamic loader and C library, so that esi-cli
 * starts in any Linux image of the same architecture: no glibc, no zlib, no Python needed there
 * (alpine, busybox, distroless/static, scratch). Nothing is extracted or written anywhere: the bundle
 * runs from a read-only volume as any uid.
 *
 * Layout (hack/esi_cli_bundle.py):
 *   esi-cli                       this launcher
 *   _internal/esi-cli             CPython embedded with a fixed configuration (hack/esi-cli-python.c)
 *   _internal/lib/python3.X/      the compiled modules esi-cli imports
 *   _internal/LOADER              glibc's dynamic loader (ld-linux-x86-64.so.2 on x86_64)
 *   _internal/libc.so.6 ...       the C library, libpython and every other library the program loads
 *
 * It replaces itself with `LOADER --inhibit-cache --library-path DIR/_internal DIR/_internal/esi-cli
 * ARGS...`. The loader's option, unlike LD_LIBRARY_PATH, is not passed on to anything esi-cli runs, so
 * `esi-cli exec` hands the application exactly the environment the container gave esi-cli.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef LOADER
#error "build with -DLOADER='\"ld-linux-x86-64.so.2\"' (the loader's file name in _internal)"
#endif

#define CONTENTS "_internal"
#define PROGRAM "esi-cli"

extern char **environ;

static int fail(const char *what, const char *path)
{
    fprintf(stderr, "esi-cli: %s %s: %s\n", what, path, strerror(errno));
    return 127;
}

/* The launcher's own path: /proc/self/exe, else argv[0] if it names a path, else the first match on PATH. */
static int own_path(const char *argv0, char *out)
{
    ssize_t length = readlink("/proc/self/exe", out, PATH_MAX - 1);
    if (length > 0) {
        out[length] = '\0';
        return 0;
    }
    if (strchr(argv0, '/') != NULL) {
        return realpath(argv0, out) != NULL ? 0 : -1;
    }
    const char *search = getenv("PATH");
    if (search == NULL) {
        return -1;
    }
    char candidate[PATH_MAX];
    while (*search != '\0') {
        size_t span = strcspn(search, ":");
        if (span > 0 && snprintf(candidate, sizeof candidate, "%.*s/%s", (int)span, search, argv0)
                            < (int)sizeof candidate
            && access(candidate, X_OK) == 0) {
            return realpath(candidate, out) != NULL ? 0 : -1;
        }
        search += span + (search[span] == ':');
    }
    errno = ENOENT;
    return -1;
}

int main(int argc, char **argv)
{
    char self[PATH_MAX];
    if (own_path(argc > 0 ? argv[0] : PROGRAM, self) != 0) {
        return fail("cannot find", "its own executable");
    }
    char *slash = strrchr(self, '/');
    *slash = '\0'; /* own_path gives an absolute path, so there is at least one slash */

    char contents[PATH_MAX], loader[PATH_MAX], program[PATH_MAX];
    if (snprintf(contents, sizeof contents, "%s/" CONTENTS, self) >= (int)sizeof contents
        || snprintf(loader, sizeof loader, "%s/" LOADER, contents) >= (int)sizeof loader
        || snprintf(program, sizeof program, "%s/" PROGRAM, contents) >= (int)sizeof program) {
        errno = ENAMETOOLONG;
        return fail("cannot run from", self);
    }

    char **arguments = calloc((size_t)argc + 6, sizeof *arguments);
    if (arguments == NULL) {
        return fail("cannot start", program);
    }
    int n = 0;
    arguments[n++] = loader;
    arguments[n++] = "--inhibit-cache";
    arguments[n++] = "--library-path";
    arguments[n++] = contents;
    arguments[n++] = program;
    for (int i = 1; i < argc; i++) {
        arguments[n++] = argv[i];
    }
    arguments[n] = NULL;
    execve(loader, arguments, environ);
    return fail("cannot run", loader);
}
