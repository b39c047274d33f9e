# Test driver of example_mpi_data_parallel (cmake -P):
#   cmake -DMPIEXEC=mpirun -DNUMPROC_FLAG=-n [-DPREFLAGS=--oversubscribe] -DPROGRAM=...
#         -DWORK_DIR=... -DRANKS="1;2;3;4" -P this
# Runs the example once per rank count on this machine only, then requires
# every run's dump (per-sample outputs, gradient rows, scales and fixed-order
# weight gradients of every step) to equal the first run's byte for byte.
# Each run checks the rest itself (batch-mode agreement, the Allreduce bound).

# Open MPI settings as environment variables, which other MPIs ignore: run as
# root (CI), shared memory and self only (no network probing), out-of-band
# traffic on loopback, no single-copy transfers (ptrace is often not allowed
# in containers; the messages here are small).
set(ENV{OMPI_ALLOW_RUN_AS_ROOT} 1)
set(ENV{OMPI_ALLOW_RUN_AS_ROOT_CONFIRM} 1)
set(ENV{OMPI_MCA_btl} self,vader)
set(ENV{OMPI_MCA_btl_vader_single_copy_mechanism} none)
set(ENV{OMPI_MCA_oob_tcp_if_include} lo)
set(ENV{OMP_NUM_THREADS} 1) # the library's own threads would only compete with the ranks here

foreach(var MPIEXEC NUMPROC_FLAG PROGRAM WORK_DIR RANKS)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "run_mpi_data_parallel.cmake: ${var} not set")
  endif()
endforeach()

set(reference "")
foreach(n IN LISTS RANKS)
  set(dump ${WORK_DIR}/mpi_data_parallel.${n}.bin)
  file(REMOVE ${dump})
  execute_process(COMMAND ${MPIEXEC} ${NUMPROC_FLAG} ${n} ${PREFLAGS} ${PROGRAM} --dump ${dump}
                  RESULT_VARIABLE status TIMEOUT 60)
  if(NOT status EQUAL 0)
    message(FATAL_ERROR "${n} ranks: exit status ${status}")
  endif()
  if(reference STREQUAL "")
    set(reference ${dump})
  else()
    execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${reference} ${dump} RESULT_VARIABLE differ)
    if(NOT differ EQUAL 0)
      message(FATAL_ERROR "${n} ranks: dump differs from ${reference}")
    endif()
    message("${n} ranks: dump identical to the first run's")
  endif()
endforeach()
