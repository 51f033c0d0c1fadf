import json, sys, time
from tcpkb.verify import all_scenarios
from tcpkb.verify.runner import run
s = all_scenarios()
names = sys.argv[1:] or list(s)
t = time.time()
res = run([s[n] for n in names], jobs=2)
for r in res:
    print(r["scenario"], r["status"], r["reason"], r["duration_ms"])
    if r["status"] != "passed" or "-v" in sys.argv:
        print(json.dumps(r["trace"], indent=1)[:3000])
print("wall", time.time()-t)
