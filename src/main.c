/*
** main.c - the pyasync host binary: Lua's stand-alone interpreter (lua.c)
** with pyasync preloaded, where the script, -e chunks, LUA_INIT and REPL
** lines run as the pyasync main task and SIGINT cancels that task.
*/
#include <Python.h>  /* first, as Python asks; only for Py_GetVersion */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "pyasync.h"

#define LUA_PROGNAME "pyasync"
#define LUA_INIT_VAR "LUA_INIT"
#define LUA_INITVARVERSION LUA_INIT_VAR LUA_VERSUFFIX

/* the main task's thread, anchored here so SIGINT never sees a dead one */
#define MAINCO_KEY "pyasync.host.mainco"

static const char *progname = LUA_PROGNAME;

/* --- SIGINT ---------------------------------------------------------------
** As lua.c: the handler only sets a hook that raises "interrupted!".  The
** main task runs in a coroutine, and hooks are per thread, so the hook goes
** on that coroutine; if the scheduler (the main thread) runs Lua first, the
** task was waiting and pyasync_interrupt's cancellation reaches it cleanly,
** so the main thread's hook just removes both. */

static lua_State *globalL;              /* the state docall/dotask runs */
static lua_State *volatile main_co;     /* the main task's thread, if any */
static volatile sig_atomic_t in_task;   /* dotask is running */
static volatile sig_atomic_t got_sigint;
static pthread_t main_tid;

static void setsignal(int sig, void (*handler)(int)) {
  struct sigaction sa;
  sa.sa_handler = handler;
  sa.sa_flags = 0;
  sigemptyset(&sa.sa_mask);  /* do not mask any signal */
  sigaction(sig, &sa, NULL);
}

static void clearhooks(void) {
  lua_State *co = main_co;
  if (co) lua_sethook(co, NULL, 0, 0);
  lua_sethook(globalL, NULL, 0, 0);
}

/* Hook set by the signal handler to stop the running Lua code. */
static void lstop(lua_State *L, lua_Debug *ar) {
  (void)ar;
  clearhooks();
  luaL_error(L, "interrupted!");
}

/* Hook on the main thread while a task runs: the scheduler got control
** before the task ran any Lua, so the cancellation does the work. */
static void lclear(lua_State *L, lua_Debug *ar) {
  (void)L; (void)ar;
  clearhooks();
}

static void laction(int sig) {
  int flag = LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT;
  if (!pthread_equal(pthread_self(), main_tid)) {
    pthread_kill(main_tid, sig);  /* a Python or loop thread got it */
    return;
  }
  setsignal(sig, SIG_DFL);  /* if another SIGINT happens, terminate process */
  got_sigint = 1;
  if (!in_task) {
    lua_sethook(globalL, lstop, flag, 1);
    return;
  }
  pyasync_interrupt();
  lua_State *co = main_co;
  if (co) lua_sethook(co, lstop, flag, 1);
  lua_sethook(globalL, lclear, flag, 1);
}

/* --- messages -------------------------------------------------------------- */

static void print_usage(const char *badoption) {
  lua_writestringerror("%s: ", progname);
  if (badoption[1] == 'e' || badoption[1] == 'l')
    lua_writestringerror("'%s' needs argument\n", badoption);
  else
    lua_writestringerror("unrecognized option '%s'\n", badoption);
  lua_writestringerror(
  "usage: %s [options] [script [args]]\n"
  "Available options are:\n"
  "  -e stat   execute string 'stat'\n"
  "  -i        enter interactive mode after executing 'script'\n"
  "  -l mod    require library 'mod' into global 'mod'\n"
  "  -l g=mod  require library 'mod' into global 'g'\n"
  "  -v        show version information\n"
  "  -E        ignore environment variables\n"
  "  -W        turn warnings on\n"
  "  --        stop handling options\n"
  "  -         stop handling options and execute stdin\n",
  progname);
}

static void l_message(const char *pname, const char *msg) {
  if (pname) lua_writestringerror("%s: ", pname);
  lua_writestringerror("%s\n", msg);
}

/* Prints the error on top of the stack: a string made by msghandler or
** by pyasync_runtask, except for errors raised outside both. */
static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    int top = lua_gettop(L);
    const char *msg = lua_tostring(L, -1);
    if (msg == NULL)
      msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, -1));
    l_message(progname, msg);
    lua_settop(L, top - 1);  /* remove message */
  }
  return status;
}

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {  /* is error object not a string? */
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
      return 1;  /* that is the message */
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);  /* append a standard traceback */
  return 1;
}

static void print_version(void) {
  const char *pv = Py_GetVersion();  /* "3.11.2 (main, ...) [GCC ...]" */
  lua_writestring(LUA_COPYRIGHT, strlen(LUA_COPYRIGHT));
  lua_writeline();
  printf("pyasync %s  Python %.*s\n", PYASYNC_VERSION, (int)strcspn(pv, " "), pv);
  fflush(stdout);
}

/* --- running chunks -------------------------------------------------------- */

/* Plain protected call on the main thread (for -l: a py.await there drives
** the loop, as under stock lua5.4, which a task inside require cannot). */
static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  globalL = L;
  got_sigint = 0;
  setsignal(SIGINT, laction);
  int status = lua_pcall(L, narg, nres, base);
  setsignal(SIGINT, SIG_DFL);
  lua_remove(L, base);
  return status;
}

static int taskbody_k(lua_State *L, int status, lua_KContext ctx) {
  (void)status; (void)ctx;
  return lua_gettop(L);
}

/* The main task's body: records its thread for SIGINT, then calls the
** chunk (with its arguments above it) so that the chunk may yield. */
static int taskbody(lua_State *L) {
  lua_pushthread(L);
  lua_setfield(L, LUA_REGISTRYINDEX, MAINCO_KEY);
  main_co = L;
  lua_callk(L, lua_gettop(L) - 1, LUA_MULTRET, 0, taskbody_k);
  return taskbody_k(L, LUA_OK, 0);
}

/* Runs the function below the narg arguments as the pyasync main task;
** pyasync's own message handler has added the traceback to an error. */
static int dotask(lua_State *L, int narg, int nres) {
  lua_pushcfunction(L, taskbody);
  lua_insert(L, lua_gettop(L) - narg - 1);
  globalL = L;
  got_sigint = 0;
  in_task = 1;
  setsignal(SIGINT, laction);
  int status = pyasync_runtask(L, narg + 1, nres);
  setsignal(SIGINT, SIG_DFL);
  in_task = 0;
  if (got_sigint) clearhooks();  /* one not yet run would stop later code */
  main_co = NULL;
  lua_pushnil(L);
  lua_setfield(L, LUA_REGISTRYINDEX, MAINCO_KEY);
  return status;
}

static int noop(lua_State *L) { (void)L; return 0; }

/* A SIGINT that came as a task finished may be left for the scheduler's
** next poll: run an empty task to consume it before the next REPL line. */
static void drain_interrupt(lua_State *L) {
  lua_pushcfunction(L, noop);
  if (pyasync_runtask(L, 0, 0) != LUA_OK) lua_pop(L, 1);
}

static void createargtable(lua_State *L, char **argv, int argc, int script) {
  int narg = argc - (script + 1);  /* number of positive indices */
  lua_createtable(L, narg, script + 1);
  for (int i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - script);
  }
  lua_setglobal(L, "arg");
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = dotask(L, 0, 0);
  return report(L, status);
}

static int dofile(lua_State *L, const char *name) {
  return dochunk(L, luaL_loadfile(L, name));
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

/* Receives 'globname[=modname]' and runs 'globname = require(modname)'. */
static int dolibrary(lua_State *L, char *globname) {
  char *modname = strchr(globname, '=');
  if (modname == NULL)
    modname = globname;
  else {
    *modname = '\0';
    modname++;
  }
  lua_getglobal(L, "require");
  lua_pushstring(L, modname);
  int status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, globname);
  return report(L, status);
}

/* Pushes arg[1] .. arg[#arg]. */
static int pushargs(lua_State *L) {
  if (lua_getglobal(L, "arg") != LUA_TTABLE)
    luaL_error(L, "'arg' is not a table");
  int n = (int)luaL_len(L, -1);
  luaL_checkstack(L, n + 3, "too many arguments to script");
  int i;
  for (i = 1; i <= n; i++) lua_rawgeti(L, -i, i);
  lua_remove(L, -i);  /* remove table from the stack */
  return n;
}

static int handle_script(lua_State *L, char **argv) {
  const char *fname = argv[0];
  if (strcmp(fname, "-") == 0 && strcmp(argv[-1], "--") != 0)
    fname = NULL;  /* stdin */
  int status = luaL_loadfile(L, fname);
  if (status == LUA_OK) {
    int n = pushargs(L);
    status = dotask(L, n, LUA_MULTRET);
  }
  return report(L, status);
}

/* --- options ---------------------------------------------------------------- */

#define has_error 1  /* bad option */
#define has_i 2      /* -i */
#define has_v 4      /* -v */
#define has_e 8      /* -e */
#define has_E 16     /* -E */

/* As lua.c: returns the options needed before running any Lua code;
** 'first' gets the script's index (0 if none) or the bad option's. */
static int collectargs(char **argv, int *first) {
  int args = 0;
  if (argv[0] == NULL) { *first = -1; return 0; }
  if (argv[0][0]) progname = argv[0];
  for (int i = 1; argv[i] != NULL; i++) {
    *first = i;
    if (argv[i][0] != '-') return args;  /* not an option: the script */
    switch (argv[i][1]) {
      case '-':  /* '--' */
        if (argv[i][2] != '\0') return has_error;
        *first = i + 1;
        return args;
      case '\0':  /* '-': the script is stdin */
        return args;
      case 'E':
        if (argv[i][2] != '\0') return has_error;
        args |= has_E;
        break;
      case 'W':
        if (argv[i][2] != '\0') return has_error;
        break;
      case 'i':
        args |= has_i;  /* (-i implies -v) */ /* FALLTHROUGH */
      case 'v':
        if (argv[i][2] != '\0') return has_error;
        args |= has_v;
        break;
      case 'e':
        args |= has_e;  /* FALLTHROUGH */
      case 'l':  /* both options need an argument */
        if (argv[i][2] == '\0') {
          i++;
          if (argv[i] == NULL || argv[i][0] == '-') return has_error;
        }
        break;
      default:
        return has_error;
    }
  }
  *first = 0;  /* no script name */
  return args;
}

/* Runs -e and -l in order, and applies -W.  Returns 0 if some code failed. */
static int runargs(lua_State *L, char **argv, int n) {
  for (int i = 1; i < n; i++) {
    int option = argv[i][1];
    switch (option) {
      case 'e': case 'l': {
        char *extra = argv[i] + 2;
        if (*extra == '\0') extra = argv[++i];
        int status = option == 'e' ? dostring(L, extra, "=(command line)")
                                   : dolibrary(L, extra);
        if (status != LUA_OK) return 0;
        break;
      }
      case 'W':
        lua_warning(L, "@on", 0);
        break;
    }
  }
  return 1;
}

static int handle_luainit(lua_State *L) {
  const char *name = "=" LUA_INITVARVERSION;
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=" LUA_INIT_VAR;
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dofile(L, init + 1);
  return dostring(L, init, name);
}

/* --- the REPL (lua.c's doREPL; each line runs as the main task) ----------- */

#define LUA_PROMPT "> "
#define LUA_PROMPT2 ">> "
#define LUA_MAXINPUT 512

#if defined(PYASYNC_USE_READLINE)
#include <readline/readline.h>
#include <readline/history.h>
#define lua_initreadline(L) initreadline(L)
#define lua_readline(L, b, p) ((void)L, ((b) = readline(p)) != NULL)
#define lua_saveline(L, line) ((void)L, add_history(line))
#define lua_freeline(L, b) ((void)L, free(b))
#else
#define lua_initreadline(L) ((void)L)
#define lua_readline(L, b, p) \
  ((void)L, fputs(p, stdout), fflush(stdout), fgets(b, LUA_MAXINPUT, stdin) != NULL)
#define lua_saveline(L, line) { (void)L; (void)line; }
#define lua_freeline(L, b) { (void)L; (void)b; }
#endif

#if defined(PYASYNC_USE_READLINE)
/* Tab completion (API.md section 10): readline asks between lines, when no
** task runs, and pyasync.complete finds the candidates in the REPL's state.
** Any error there just means no candidates. */

static lua_State *replL;
static char **candidates;  /* from the last Tab, NULL-ended */
static int nextcandidate;

static void freecandidates(void) {
  if (candidates == NULL) return;
  for (char **c = candidates; *c; c++) free(*c);
  free(candidates);
  candidates = NULL;
}

/* require("pyasync.complete").complete(line, word), with pyasync loaded
** first as every REPL line loads it (that preloads pyasync.complete). */
static int pushcandidates(lua_State *L) {
  lua_getglobal(L, "require");
  lua_pushliteral(L, "pyasync");
  lua_call(L, 1, 0);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "pyasync.complete");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "complete");
  lua_pushvalue(L, 1);
  lua_pushvalue(L, 2);
  lua_call(L, 2, 1);
  luaL_checktype(L, -1, LUA_TTABLE);
  return 1;
}

/* The candidates as a NULL-ended array of malloc'd strings, or NULL. */
static char **getcandidates(lua_State *L, const char *line, int len, const char *word) {
  int top = lua_gettop(L);
  char **list = NULL;
  lua_pushcfunction(L, pushcandidates);
  lua_pushlstring(L, line, (size_t)len);
  lua_pushstring(L, word);
  if (lua_pcall(L, 2, 1, 0) == LUA_OK) {
    size_t n = lua_rawlen(L, -1), k = 0;
    list = calloc(n + 1, sizeof *list);
    for (size_t i = 1; list && i <= n; i++) {
      if (lua_rawgeti(L, -1, (lua_Integer)i) == LUA_TSTRING) {
        char *c = strdup(lua_tostring(L, -1));
        if (c) list[k++] = c;
      }
      lua_pop(L, 1);
    }
  }
  lua_settop(L, top);
  return list;
}

static char *candidate(const char *text, int state) {
  (void)text;
  if (state == 0) nextcandidate = 0;
  if (candidates == NULL || candidates[nextcandidate] == NULL) return NULL;
  return strdup(candidates[nextcandidate++]);
}

static char **complete_word(const char *text, int start, int end) {
  (void)start;
  rl_attempted_completion_over = 1;       /* never file names */
  rl_completion_append_character = '\0';  /* "string" may go on with "." */
  freecandidates();
  candidates = getcandidates(replL, rl_line_buffer, end, text);
  if (candidates == NULL || candidates[0] == NULL) return NULL;
  return rl_completion_matches(text, candidate);
}

/* A word is a name chain such as np.random.ra or s:up. */
static void initreadline(lua_State *L) {
  static char breaks[] = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^#~!?";
  replL = L;
  rl_readline_name = "pyasync";
  rl_completer_word_break_characters = breaks;
  rl_attempted_completion_function = complete_word;
}
#endif

/* Leaves the prompt string (or nil) on the stack to keep it anchored. */
static const char *get_prompt(lua_State *L, int firstline) {
  if (lua_getglobal(L, firstline ? "_PROMPT" : "_PROMPT2") == LUA_TNIL)
    return firstline ? LUA_PROMPT : LUA_PROMPT2;
  const char *p = luaL_tolstring(L, -1, NULL);
  lua_remove(L, -2);
  return p;
}

#define EOFMARK "<eof>"
#define marklen (sizeof(EOFMARK) / sizeof(char) - 1)

/* A syntax error at <eof> means the statement may continue on next line. */
static int incomplete(lua_State *L, int status) {
  if (status == LUA_ERRSYNTAX) {
    size_t lmsg;
    const char *msg = lua_tolstring(L, -1, &lmsg);
    if (lmsg >= marklen && strcmp(msg + lmsg - marklen, EOFMARK) == 0) {
      lua_pop(L, 1);
      return 1;
    }
  }
  return 0;
}

static int pushline(lua_State *L, int firstline) {
  char buffer[LUA_MAXINPUT];
  char *b = buffer;
  const char *prmt = get_prompt(L, firstline);
  if (!lua_readline(L, b, prmt)) return 0;  /* caller pops the prompt */
  lua_pop(L, 1);  /* remove prompt */
  size_t l = strlen(b);
  if (l > 0 && b[l - 1] == '\n') b[--l] = '\0';
  if (firstline && b[0] == '=')  /* for compatibility with 5.2, ... */
    lua_pushfstring(L, "return %s", b + 1);
  else
    lua_pushlstring(L, b, l);
  lua_freeline(L, b);
  return 1;
}

/* Tries 'return <line>;'; leaves the chunk or, failing, the line. */
static int addreturn(lua_State *L) {
  const char *line = lua_tostring(L, -1);
  const char *retline = lua_pushfstring(L, "return %s;", line);
  int status = luaL_loadbuffer(L, retline, strlen(retline), "=stdin");
  if (status == LUA_OK) {
    lua_remove(L, -2);
    if (line[0] != '\0') lua_saveline(L, line);
  } else {
    lua_pop(L, 2);
  }
  return status;
}

static int multiline(lua_State *L) {
  for (;;) {
    size_t len;
    const char *line = lua_tolstring(L, 1, &len);
    int status = luaL_loadbuffer(L, line, len, "=stdin");
    if (!incomplete(L, status) || !pushline(L, 0)) {
      lua_saveline(L, line);
      return status;
    }
    lua_pushliteral(L, "\n");
    lua_insert(L, -2);
    lua_concat(L, 3);
  }
}

/* Reads and compiles one statement; -1 at end of input. */
static int loadline(lua_State *L) {
  lua_settop(L, 0);
  if (!pushline(L, 1)) return -1;
  int status = addreturn(L);
  if (status != LUA_OK) status = multiline(L);
  lua_remove(L, 1);  /* remove line from the stack */
  return status;
}

static void l_print(lua_State *L) {
  int n = lua_gettop(L);
  if (n > 0) {
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
      l_message(progname, lua_pushfstring(L, "error calling 'print' (%s)",
                                          lua_tostring(L, -1)));
  }
}

static void doREPL(lua_State *L) {
  int status;
  const char *oldprogname = progname;
  progname = NULL;  /* no 'progname' on errors in interactive mode */
  lua_initreadline(L);
  while ((status = loadline(L)) != -1) {
    if (status == LUA_OK) status = dotask(L, 0, LUA_MULTRET);
    if (status == LUA_OK) l_print(L);
    else report(L, status);
    if (got_sigint) drain_interrupt(L);
  }
  lua_settop(L, 0);
  lua_writeline();
  progname = oldprogname;
}

/* --- main -------------------------------------------------------------------- */

static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script;
  int args = collectargs(argv, &script);
  int optlim = script > 0 ? script : argc;  /* first argv not an option */
  luaL_checkversion(L);
  if (args == has_error) {
    print_usage(argv[script]);
    return 0;
  }
  if (args & has_v) print_version();
  if (args & has_E) {  /* signal for libraries to ignore env. vars. */
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  pyasync_preload(L);
  createargtable(L, argv, argc, script);
  lua_gc(L, LUA_GCRESTART);
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!(args & has_E) && handle_luainit(L) != LUA_OK) return 0;
  if (!runargs(L, argv, optlim)) return 0;
  if (script > 0 && handle_script(L, argv + script) != LUA_OK) return 0;
  if (args & has_i)
    doREPL(L);
  else if (script < 1 && !(args & (has_e | has_v))) {  /* no active option */
    if (isatty(0)) {
      print_version();
      doREPL(L);
    } else {
      dofile(L, NULL);  /* executes stdin as a file */
    }
  }
  lua_pushboolean(L, 1);  /* signal no errors */
  return 1;
}

/* Reports failed tasks nobody awaited while Python still runs, then stops
** Python (cancelling what is left) before the state goes. */
static void closestate(lua_State *L) {
  lua_settop(L, 0);
  if (lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE) == LUA_TTABLE &&
      lua_getfield(L, -1, "pyasync") == LUA_TTABLE &&
      lua_getfield(L, -1, "_report_unretrieved") == LUA_TFUNCTION &&
      lua_pcall(L, 0, 0, 0) != LUA_OK)
    report(L, LUA_ERRRUN);
  lua_settop(L, 0);
  pyasync_shutdown(L);
  lua_close(L);
}

int main(int argc, char **argv) {
  main_tid = pthread_self();
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    l_message(argv[0], "cannot create state: not enough memory");
    return EXIT_FAILURE;
  }
  globalL = L;
  lua_gc(L, LUA_GCSTOP);  /* stop GC while building state */
  lua_pushcfunction(L, &pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int result = lua_toboolean(L, -1);
  report(L, status);
  closestate(L);
  if (result && status == LUA_OK) return EXIT_SUCCESS;
  return got_sigint ? 128 + SIGINT : EXIT_FAILURE;
}
