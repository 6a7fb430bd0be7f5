// Opens an X-macro pass over protocol.def: a pass #defines the SB_* macros it uses, then
// includes this file (every macro it did not define becomes empty), "protocol.def" and
// "protocol_def_close.h". No include guard: included once per pass.
#ifndef SB_CONST
#define SB_CONST(type, name, value)
#endif
#ifndef SB_CALL
#define SB_CALL(code, NAME, Id, Req, Rep)
#endif
#ifndef SB_RECORD
#define SB_RECORD(Name)
#endif
#ifndef SB_FIELD
#define SB_FIELD(type, name)
#endif
#ifndef SB_FIELD_MAX
#define SB_FIELD_MAX(type, name, limit)
#endif
#ifndef SB_FIELD_IS
#define SB_FIELD_IS(type, name, value)
#endif
#ifndef SB_FIELD_INIT
#define SB_FIELD_INIT(type, name, value)
#endif
#ifndef SB_ARRAY
#define SB_ARRAY(Record, name)
#endif
#ifndef SB_END
#define SB_END(Name)
#endif
#ifndef SB_VIEW
#define SB_VIEW(View, Record)
#endif
