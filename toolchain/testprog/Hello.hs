-- Hello: the program every HaLVM toolchain of this project must turn into a
-- Xen PV kernel that prints one line on its PV console and exits. It prints
-- through XenDevice's console driver (the console ring that xenconsoled
-- relays), not the emergency console, which release builds of Xen refuse.
import Hypervisor.Console

main :: IO ()
main = do
  con <- initXenConsole
  writeConsole con "Hello, World!\n"
