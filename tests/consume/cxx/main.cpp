// C++ consumer of the installed package (tests/consume/cxx): the headers compile as C++, the
// library links, and linking advect::advect turned no OpenMP on in this program.
#include <advect/advect.h>

#include <cstdio>
#include <cstring>

#ifdef _OPENMP
#error "advect::advect passed OpenMP flags on to its consumer"
#endif

int main() {
    const char *v = adv_version();
    if (!v || std::strlen(v) == 0) {
        std::fprintf(stderr, "consume_cxx: adv_version returned nothing\n");
        return 1;
    }
    std::printf("consume_cxx: advect %s, %s\n", v, adv_status_string(ADV_ERR_NULL_POINTER));
    return 0;
}
