// Closes an X-macro pass over protocol.def (see protocol_def_open.h).
#undef SB_CONST
#undef SB_CALL
#undef SB_RECORD
#undef SB_FIELD
#undef SB_FIELD_MAX
#undef SB_FIELD_IS
#undef SB_FIELD_INIT
#undef SB_ARRAY
#undef SB_END
#undef SB_VIEW
