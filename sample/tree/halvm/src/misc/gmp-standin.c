/* gmp-standin.c: the sample upstream's stand-in for GMP 6.1.2 (the gmp
 * flavour bundles a static libgmp in rts-1.0): a few mpz entry points over
 * one machine word, freestanding, enough to link integer-gmp's references. */
#include "gmp.h"

void __gmpz_init(mpz_ptr x) { x->_mp_size = 0; x->_mp_value = 0; }
void __gmpz_set_si(mpz_ptr x, long v) { x->_mp_value = v; x->_mp_size = v != 0; }
void __gmpz_add(mpz_ptr r, mpz_srcptr a, mpz_srcptr b) { __gmpz_set_si(r, a->_mp_value + b->_mp_value); }
void __gmpz_mul(mpz_ptr r, mpz_srcptr a, mpz_srcptr b) { __gmpz_set_si(r, a->_mp_value * b->_mp_value); }
long __gmpz_get_si(mpz_srcptr x) { return x->_mp_value; }
void __gmpz_clear(mpz_ptr x) { (void)x; }
