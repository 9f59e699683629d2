# Writes the pyasync-stubs launcher OUT: tools/stubs/pyasync-stubs.lua (a
# sh + Lua file) with the generator tools/stubs/pyasync_stubs.py inlined as
# a Lua long string, so the one executable file works from the build tree
# and wherever it is installed beside the host binary.  -DSRC=tools/stubs.
file(READ ${SRC}/pyasync-stubs.lua driver)
file(READ ${SRC}/pyasync_stubs.py python)
set(eq "====")
string(FIND "${python}" "]${eq}]" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "pyasync_stubs.py contains ]${eq}]")
endif()
set(marker "nil -- @PYASYNC_STUBS_SOURCE@")
string(FIND "${driver}" "${marker}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "pyasync-stubs.lua lacks the source marker")
endif()
# The newline after [====[ is skipped by Lua, so the source stays exact.
string(REPLACE "${marker}" "[${eq}[\n${python}]${eq}]" out "${driver}")
get_filename_component(dir ${OUT} DIRECTORY)
get_filename_component(name ${OUT} NAME)
set(tmp ${dir}/CMakeFiles/pyasync-stubs.tmp)
file(WRITE ${tmp}/${name} "${out}")
file(COPY ${tmp}/${name} DESTINATION ${dir}
  FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
                   GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
file(REMOVE_RECURSE ${tmp})
