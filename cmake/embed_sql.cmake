# Turns migrations/sqlite/NNNN_name.sql into a C array the store applies in order.
# Called as: cmake -DOUT=file.c -DFILES="a.sql;b.sql" -P embed_sql.cmake
#
# To add a migration: write migrations/sqlite/NNNN_what.sql with the next number (never edit a
# released one), regenerate schema/schema.sql (tests/unit/test_store.c compares them),
# and rebuild. The store runs each file in its own BEGIN IMMEDIATE ... COMMIT and sets
# PRAGMA user_version to NNNN.
# FILES comes '|'-separated (see CMakeLists.txt).
string(REPLACE "|" ";" FILES "${FILES}")
set(body "/* Generated from the migrations folder by cmake/embed_sql.cmake; do not edit. */\n")
string(APPEND body "#include \"sqlite/migrations.h\"\n\nconst struct migration migrations[] = {\n")
set(count 0)
foreach(f ${FILES})
  get_filename_component(name ${f} NAME_WE)
  string(REGEX MATCH "^[0-9]+" num ${name})
  if(NOT num)
    message(FATAL_ERROR "migration ${f} does not start with a number")
  endif()
  math(EXPR num "${num}")
  file(READ ${f} hex HEX)
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," hex "${hex}")
  string(APPEND body "  {${num}, \"${name}\", (const char[]){${hex}0x00}},\n")
  math(EXPR count "${count}+1")
endforeach()
string(APPEND body "};\nconst int migrations_count = ${count};\n")
file(WRITE ${OUT} "${body}")
