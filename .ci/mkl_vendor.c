/* Which vendor's processor Intel MKL (linked into torch's libtorch_cpu.so) believes it runs on.
 *
 * MKL chooses its kernels by vendor before instruction set: on an Intel processor its AVX-512
 * (or AVX2) SGEMM, on an AMD one a Zen path, whatever the instruction set. So a float32 matmul
 * rounds differently on the two vendors even where both have AVX-512, and the environment
 * variables (MKL_ENABLE_INSTRUCTIONS, MKL_CBWR) cannot cross that line. Preloaded
 * (LD_PRELOAD), this file's three functions take the place of MKL's own, which torch calls
 * through the dynamic linker. Built by .ci/kernels.py with -DINTEL=1 on an AMD machine (MKL
 * then runs as on Intel) and -DINTEL=0 on an Intel one (MKL then runs as on a Zen). On an AMD EPYC
 * (Zen 4) MKL's own functions return 0, 0 and 1; with -DINTEL=1 its SGEMM takes the AVX-512
 * path (mkl_serv_cpu_detect() 7, MKL_VERBOSE "Intel(R) AVX-512 ... enabled processors"). For
 * CI's second pass only; nothing the project ships loads it.
 */
#ifndef INTEL
#error "build with -DINTEL=1 (run MKL as on Intel) or -DINTEL=0 (as on AMD Zen)"
#endif

int mkl_serv_intel_cpu_true(void) { return INTEL; } /* the kernel dispatch asks this */
int mkl_serv_intel_cpu(void) { return INTEL; }      /* MKL_VERBOSE's processor line asks this */
int mkl_serv_cpuiszen(void) { return !INTEL; }      /* the Zen SGEMM path */
