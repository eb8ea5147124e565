-- Hypervisor.Console: the PV console driver's interface (sample upstream).
-- The sample's stand-in compiler does not compile Haskell: it recognises a
-- program that calls initXenConsole and writeConsole with a string literal
-- and generates the equivalent C against the RTS console ring. This module
-- records the interface such programs are written against.
module Hypervisor.Console(Console, initXenConsole, writeConsole) where

data Console

initXenConsole :: IO Console
initXenConsole = error "stand-in: compiled by the sample compiler, not GHC"

writeConsole :: Console -> String -> IO ()
writeConsole _ _ = error "stand-in: compiled by the sample compiler, not GHC"
