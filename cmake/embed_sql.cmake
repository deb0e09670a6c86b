# Turns migrations/BACKEND/NNNN_name.sql into a C array BACKEND_migrations[] the store's
# backend applies in order.
# Called as: cmake -DOUT=file.c -DNAME=sqlite -DFILES="a.sql;b.sql" -P embed_sql.cmake
#
# To add a migration: write migrations/BACKEND/NNNN_what.sql with the next number (never edit
# a released one); for SQLite regenerate schema/schema.sql (tests/unit/test_store.c compares
# them); rebuild. Each file runs in its own transaction and records its number.
# FILES comes '|'-separated (see CMakeLists.txt).
string(REPLACE "|" ";" FILES "${FILES}")
set(body "/* Generated from the migrations folder by cmake/embed_sql.cmake; do not edit. */\n")
string(APPEND body "#include \"migrations.h\"\n\nconst struct migration ${NAME}_migrations[] = {\n")
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
string(APPEND body "};\nconst int ${NAME}_migrations_count = ${count};\n")
file(WRITE ${OUT} "${body}")
