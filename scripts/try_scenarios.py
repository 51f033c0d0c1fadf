import json, sys, time
from tcpkb.verify import all_scenarios
from tcpkb.verify.runner import run
s = all_scenarios()
names = [a for a in sys.argv[1:] if not a.startswith("-")] or list(s)
t = time.time()
res = run([s[n] for n in names], jobs=2)
for r in res:
    print(r["scenario"], r["status"], r["reason"], r["duration_ms"])
    if r["status"] != "passed" or "-v" in sys.argv:
        print(json.dumps(r["trace"], indent=1)[:3000])
print("wall", time.time()-t)
