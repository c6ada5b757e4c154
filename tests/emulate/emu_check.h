/* Checks of the emulation tests: EXPECT(cond, printf-style message) counts a check and
 * reports the first 20 failures; emu_report prints "<name>: N checks, M failed" and gives the
 * exit status. */
#ifndef ADVECT_TESTS_EMU_CHECK_H
#define ADVECT_TESTS_EMU_CHECK_H

#include <cstdio>

inline int emu_failures = 0, emu_checks = 0;

#define EXPECT(cond, ...)                                                                     \
    do {                                                                                      \
        ++emu_checks;                                                                         \
        if (!(cond) && emu_failures++ < 20) {                                                 \
            std::fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                         \
            std::fprintf(stderr, __VA_ARGS__);                                                \
            std::fprintf(stderr, "\n");                                                       \
        }                                                                                     \
    } while (0)

inline int emu_report(const char *name) {
    std::printf("%s: %d checks, %d failed\n", name, emu_checks, emu_failures);
    return emu_failures ? 1 : 0;
}

#endif
