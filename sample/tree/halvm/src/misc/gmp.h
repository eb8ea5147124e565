/* gmp.h of the sample's GMP stand-in (see gmp-standin.c). */
#ifndef SAMPLE_GMP_H
#define SAMPLE_GMP_H
#define __GNU_MP_VERSION 6
#define __GNU_MP_VERSION_MINOR 1
#define __GNU_MP_VERSION_PATCHLEVEL 2
typedef struct { int _mp_size; long _mp_value; } __mpz_struct;
typedef __mpz_struct *mpz_ptr;
typedef const __mpz_struct *mpz_srcptr;
void __gmpz_init(mpz_ptr);
void __gmpz_set_si(mpz_ptr, long);
void __gmpz_add(mpz_ptr, mpz_srcptr, mpz_srcptr);
void __gmpz_mul(mpz_ptr, mpz_srcptr, mpz_srcptr);
long __gmpz_get_si(mpz_srcptr);
void __gmpz_clear(mpz_ptr);
#endif
