// Element picker: a periodic table; each element offers its K, L and M groups (the ones the
// beam excites are enabled). Selected groups go into the configuration's [peaks] section.
import { useEffect, useState } from 'react';

import { getJSON } from './api';

interface ElementInfo {
  z: number;
  symbol: string;
  groups: Record<string, { energy: number; edge: number; excited: boolean }>;
}

/** Row and column (1-based) of element Z in the usual 18-column table; f-block below. */
function position(z: number): [number, number] {
  if (z <= 2) return [1, z === 1 ? 1 : 18];
  if (z <= 10) return [2, z <= 4 ? z - 2 : z + 8];
  if (z <= 18) return [3, z <= 12 ? z - 10 : z];
  if (z <= 36) return [4, z - 18];
  if (z <= 54) return [5, z - 36];
  if (z >= 57 && z <= 71) return [8, z - 57 + 3];
  if (z >= 89 && z <= 103) return [9, z - 89 + 3];
  if (z <= 86) return [6, z <= 56 ? z - 54 : z - 68];
  return [7, z <= 88 ? z - 86 : z - 100];
}

interface Props {
  peaks: Record<string, string[]>;
  excitation: number | null;
  onChange: (peaks: Record<string, string[]>) => void;
}

function PeriodicTable(props: Props) {
  const { peaks, excitation, onChange } = props;
  const [elements, setElements] = useState<ElementInfo[]>([]);
  const [active, setActive] = useState<string | null>(null);
  const [error, setError] = useState('');

  useEffect(() => {
    const query = excitation ? `?excitation=${excitation}` : '';
    getJSON<{ elements: ElementInfo[] }>(`/api/xrf/elements${query}`)
      .then((answer) => setElements(answer.elements))
      .catch((err: Error) => setError(err.message));
  }, [excitation]);

  function toggle(symbol: string, group: string) {
    const current = new Set(peaks[symbol] ?? []);
    if (current.has(group)) {
      current.delete(group);
    } else {
      current.add(group);
    }
    const next = { ...peaks };
    if (current.size) {
      next[symbol] = [...current].sort();
    } else {
      delete next[symbol];
    }
    onChange(next);
  }

  const info = elements.find((e) => e.symbol === active);
  return (
    <div className="bd-wb-ptable-wrap">
      {error && <p className="bd-wb-error">{error}</p>}
      <div className="bd-wb-ptable" data-testid="periodic-table">
        {elements.map((e) => {
          const [row, col] = position(e.z);
          const chosen = peaks[e.symbol]?.length;
          return (
            <button
              key={e.symbol}
              type="button"
              className={`bd-wb-el${chosen ? ' chosen' : ''}${active === e.symbol ? ' active' : ''}`}
              style={{ gridRow: row, gridColumn: col }}
              title={Object.entries(e.groups)
                .map(([g, v]) => `${g} ${v.energy.toFixed(2)} keV${v.excited ? '' : ' (not excited)'}`)
                .join(', ')}
              data-element={e.symbol}
              onClick={() => setActive(e.symbol)}
            >
              {e.symbol}
              {chosen ? <small>{peaks[e.symbol].join('')}</small> : null}
            </button>
          );
        })}
      </div>
      {info && (
        <div className="bd-wb-groups" data-testid="element-groups">
          <strong>{info.symbol}</strong>
          {Object.keys(info.groups).length === 0 && <span> no lines above 0.9 keV</span>}
          {Object.entries(info.groups).map(([g, v]) => (
            <label key={g} className={v.excited ? '' : 'muted'}>
              <input
                type="checkbox"
                checked={(peaks[info.symbol] ?? []).includes(g)}
                disabled={!v.excited && !(peaks[info.symbol] ?? []).includes(g)}
                onChange={() => toggle(info.symbol, g)}
                data-group={`${info.symbol} ${g}`}
              />
              {g} ({v.energy.toFixed(2)} keV)
            </label>
          ))}
        </div>
      )}
    </div>
  );
}

export default PeriodicTable;
