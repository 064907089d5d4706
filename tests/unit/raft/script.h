/*
 * Scripted Raft interaction tests with golden output (see script.c for the command language).
 * script_run() owns everything it creates and frees it before returning.
 */
#ifndef CHRONIK_TESTS_UNIT_RAFT_SCRIPT_H
#define CHRONIK_TESTS_UNIT_RAFT_SCRIPT_H

/* Runs the script at path; 0 when every command printed what the script expects. */
int script_run(const char *path);

#endif
