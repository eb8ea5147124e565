# ghc.mk: marks the top of the halvm-ghc tree (as GHC's does) and names the
# libraries the sample builds for the target.
TARGET_LIBRARIES = ghc-prim $(INTEGER_LIBRARY) base array HALVMCore XenDevice
