# Sampling module (fields and samplers): oracles of spec math.md §8 (O1-O8, SDE), unit tests
# (reproducibility, checkpoints, snapshots, invalid input) and the conformance suite built
# once per backend (the CUDA instance skips visibly without a usable GPU).
advect_add_test(oracles_sampling LABEL cpu SOURCES oracles/sampling.c)
advect_add_test(unit_sampling LABEL cpu SOURCES unit/sampling.c)
set(ADVECT_SAMPLING_CONFORMANCE conformance/conformance.c conformance/sampling.c)
advect_add_test(conformance_sampling_cpu LABEL cpu SOURCES ${ADVECT_SAMPLING_CONFORMANCE})
target_compile_definitions(conformance_sampling_cpu PRIVATE ADV_TEST_BACKEND=ADV_BACKEND_CPU)
advect_add_test(conformance_sampling_cuda LABEL cuda SOURCES ${ADVECT_SAMPLING_CONFORMANCE})
target_compile_definitions(conformance_sampling_cuda PRIVATE ADV_TEST_BACKEND=ADV_BACKEND_CUDA)
set_tests_properties(conformance_sampling_cuda PROPERTIES RESOURCE_LOCK gpu)
# Several tests compare runs on 1, 2 and 3 threads; on a busy machine spinning OpenMP workers
# make each parallel region cost a time slice, so the suites let idle workers sleep.
set_tests_properties(oracles_sampling unit_sampling conformance_sampling_cpu conformance_sampling_cuda
  PROPERTIES ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
