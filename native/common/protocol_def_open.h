// Opens an X-macro pass over protocol.def: every SB_* macro starts out empty, so a pass
// #undefs and redefines only the ones it uses, includes "protocol.def", then
// "protocol_def_close.h". No include guard: included once per pass.
#define SB_CONST(type, name, value)
#define SB_CALL(code, NAME, Id, Req, Rep)
#define SB_RECORD(Name)
#define SB_FIELD(type, name)
#define SB_FIELD_MAX(type, name, limit)
#define SB_FIELD_IS(type, name, value)
#define SB_FIELD_INIT(type, name, value)
#define SB_ARRAY(Record, name)
#define SB_END(Name)
#define SB_VIEW(View, Record)
