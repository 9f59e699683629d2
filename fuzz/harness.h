/*
** harness.h - what the pyasync fuzz targets share: one Lua state with
** pyasync loaded (global `py`), Lua driver chunks, and a reader that turns
** the fuzz input into choices.
*/
#ifndef FUZZ_HARNESS_H
#define FUZZ_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <lua.h>

/* The state, created on first use with the standard libraries and pyasync. */
lua_State *fz_state(void);
/* Runs a Lua chunk (defining the driver); aborts if it fails. */
void fz_load(lua_State *L, const char *name, const char *src);
/* Calls the function below nargs arguments; an error escaping it is an
** oracle failure: prints it with a traceback and aborts, so libFuzzer keeps
** the input. */
void fz_call(lua_State *L, int nargs);
/* Per-iteration housekeeping: a collection now and then, so __gc and the
** deferred releases run while the fuzzer is still watching. */
void fz_step(lua_State *L);

typedef struct { const uint8_t *p; size_t n; } fz_Reader;
int fz_more(const fz_Reader *r);
uint8_t fz_u8(fz_Reader *r);          /* 0 once the input is used up */
uint16_t fz_u16(fz_Reader *r);
uint64_t fz_u64(fz_Reader *r);
/* Up to max bytes, length from the input; points into the input. */
const char *fz_bytes(fz_Reader *r, size_t max, size_t *len);

#endif
