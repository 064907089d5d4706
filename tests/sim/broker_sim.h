/*
 * The whole-cluster simulator's stage 5: every node a complete broker, clients speaking Kafka
 * (broker_sim.c says what runs, what is checked and which faults apply). It owns everything of
 * one run and frees it before bsim_run() returns; cluster_sim --brokers runs it.
 */
#ifndef CHRONIK_TESTS_SIM_BROKER_SIM_H
#define CHRONIK_TESTS_SIM_BROKER_SIM_H

#include "sim/cluster_sim.h"

/* Runs one seed (o->time_ms of faults, o->nodes brokers). Returns 0 when every check and
 * liveness bound held; res as csim_run's (the counters that apply). */
int bsim_run(const struct csim_options *o, struct csim_result *res);

#endif
