// SPDX-License-Identifier: GPL-2.0
/*
 * test_klp_state3: a third cumulative patch whose console loglevel handling
 * is test_klp_state2's, state version 2 included; only the module (and so
 * the patch) has another name.
 */
#include "test_klp_state2.c"
