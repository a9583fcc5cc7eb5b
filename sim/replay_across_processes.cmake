# Determinism across processes and threads: the same scenario and seed run
# in two separate processes -- one on one thread, one writing its stores
# behind on a second (--threads 2) -- and as one seed of a sweep on two
# worker threads, must print the same trace hash; the two processes also
# the same state hash. Run by ctest (sim_replays_across_processes) with
# -DGEARMESH=<gearmesh binary> -DSCENARIO=<file> -DSEED=<n>.
foreach(run 1 2)
  execute_process(COMMAND ${GEARMESH} sim ${SCENARIO} --seed ${SEED} --threads ${run}
                  OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "run ${run} exited ${rc}:\n${out}")
  endif()
  string(REGEX MATCH "trace +([0-9a-f]+)" _ "${out}")
  set(trace${run} "${CMAKE_MATCH_1}")
  string(REGEX MATCH "state +([0-9a-f]+)" _ "${out}")
  set(state${run} "${CMAKE_MATCH_1}")
endforeach()
if(trace1 STREQUAL "" OR NOT trace1 STREQUAL trace2 OR NOT state1 STREQUAL state2)
  message(FATAL_ERROR "one thread and two differ: trace ${trace1} / ${trace2}, state ${state1} / ${state2}")
endif()
math(EXPR first "${SEED} - 1")
math(EXPR last "${SEED} + 1")
execute_process(COMMAND ${GEARMESH} sim ${SCENARIO} --seeds ${first}..${last} --jobs 2
                OUTPUT_VARIABLE out RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the sweep exited ${rc}:\n${out}")
endif()
string(REGEX MATCH "seed +${SEED} +ok +trace ([0-9a-f]+)" _ "${out}")
if(NOT CMAKE_MATCH_1 STREQUAL trace1)
  message(FATAL_ERROR "the sweep's trace of seed ${SEED} is '${CMAKE_MATCH_1}', one run's ${trace1}:\n${out}")
endif()
message(STATUS "seed ${SEED}: trace ${trace1}, state ${state1} in two processes (one and two threads) and in a sweep")
