* nnmip model tiny_milp: 6 columns, 4 rows, 9 nonzeros
NAME tiny_milp
ROWS
 N  obj
 G  fc__range_0
 E  fc__eq_0
 G  fc__cover_0
 L  fc__cap_0
COLUMNS
    in__x_0  obj  1.0
    in__x_0  fc__range_0  1.0
    in__x_0  fc__cover_0  1.0
    in__x_0  fc__cap_0  0.1
    in__y_0  obj  2.0
    in__y_0  fc__range_0  1.0
    in__y_0  fc__eq_0  1.0
    fc__t_0  obj  -1.0
    fc__t_0  fc__eq_0  -1.0
    MARKER  'MARKER'  'INTORG'
    fc__u_0  obj  3.0
    fc__u_0  fc__cover_0  1.0
    fc__k_0  obj  1.0
    fc__k_0  fc__cover_0  1.0
    MARKER  'MARKER'  'INTEND'
    fc__y_0  fc__cap_0  1.0
RHS
    RHS  fc__range_0  1.0
    RHS  fc__eq_0  1.0
    RHS  fc__cover_0  0.5
    RHS  fc__cap_0  4.0
RANGES
    RNG  fc__range_0  2.0
BOUNDS
 LO BND  in__x_0  -1.0
 UP BND  in__x_0  5.0
 FR BND  in__y_0
 MI BND  fc__t_0
 UP BND  fc__t_0  2.0
 BV BND  fc__u_0
 LO BND  fc__k_0  -3.0
 PL BND  fc__k_0
 FX BND  fc__y_0  0.5
ENDATA
