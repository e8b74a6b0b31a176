* nnmip model tiny_max: 5 columns, 5 rows, 9 nonzeros
* hand-made test model
NAME tiny_max
OBJSENSE
    MAX
ROWS
 N  obj
 L  net__cap_0
 G  net__empty_0
 E  net__link_0
 L  net__gap_0
COLUMNS
    MARKER  'MARKER'  'INTORG'
    net__a_0  obj  1.0
    net__a_0  net__cap_0  1.0
    net__a_0  net__gap_0  1.0
    net__b_0  obj  2.0
    MARKER  'MARKER'  'INTEND'
    net__c_0  obj  0.5
    net__c_0  net__cap_0  1.0
    net__c_0  net__link_0  1.0
    MARKER  'MARKER'  'INTORG'
    net__d_0  obj  1.5
    net__d_0  net__cap_0  1.0
    net__d_0  net__gap_0  -1.0
    MARKER  'MARKER'  'INTEND'
    net__e_0  obj  -1.0
    net__e_0  net__link_0  -1.0
    obj_constant  obj  2.5
RHS
    RHS  net__cap_0  6.5
    RHS  net__empty_0  -1.0
    RHS  net__link_0  2.5
    RHS  net__gap_0  0.3
RANGES
    RNG  net__empty_0  2.0
    RNG  net__gap_0  1.3
BOUNDS
 UP BND  net__a_0  4.0
 FX BND  net__b_0  1.0
 PL BND  net__d_0
 LO BND  net__e_0  -2.0
 UP BND  net__e_0  3.0
 FX BND  obj_constant  1.0
ENDATA
